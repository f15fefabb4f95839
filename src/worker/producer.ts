/**
 * The producer: claims tasks, holds them in a buffer, and dispatches them to handler slots.
 *
 * Policy (the original tutorial's consumer: concurrency 2, prefetch 5):
 * - Concurrency: at most `concurrency` handlers run at once.
 * - Prefetch: at most `prefetch` more tasks wait claimed in memory, so at most
 *   `concurrency + prefetch` tasks are held by this process at any moment.
 * - Batching: one claim takes as many tasks as there is room for, in one transaction, and the
 *   producer claims again only when its buffer falls to half of `prefetch` (not after every task),
 *   which keeps a fast queue at a few claims per batch instead of one per task.
 * - Wake-ups: it claims when woken (a task was queued in this process, or by NOTIFY on
 *   PostgreSQL), when its last claim came back full, when a slot frees, and every `pollMs`
 *   otherwise, so delayed tasks, retries and tasks queued by other processes are found within
 *   `pollMs`. Claims always run on a later turn of the event loop (setImmediate; see
 *   `scheduleFetch`), and many wake-ups before it coalesce into one claim. A claim that fails
 *   (database unreachable) is tried again after a backoff (100 ms doubling to 5 s), not left to
 *   the next poll: notifications sent meanwhile are lost, and `pollMs` may be long.
 * - Per-action limits: a handler may set its own `concurrency`: at most that many tasks of its
 *   action are held (running or buffered) here; claims skip actions at their limit, and a claim
 *   that returns more of one such action than it has room for gives the extra tasks straight back.
 * - Flow control (docs/flow-control.md): actions with a rate limit or a per-key cap are claimed
 *   under those limits, which the database holds across processes (the driver's claim reads and
 *   spends the bucket, and counts a key's running tasks, in the claim's own transaction). A
 *   process without such actions makes the plain claim and pays nothing for the feature. When a
 *   claim says a rate limit held tasks back, the producer claims again when the bucket next holds
 *   a token; with per-key caps it also wakes whenever tasks finish (`tasksChanged`), since a
 *   finished task frees its key's slot, here or in another process.
 * - Leases are the lease keeper's: it tells the producer which held tasks lost their lease
 *   (`leaseLost`) or were asked to stop (`cancel`, also straight from the driver's
 *   `cancelRequested` event). A cancelled running task is aborted; a cancelled buffered one is
 *   dropped and recorded cancelled, and never starts. Outcomes go through the task runner to
 *   the completer.
 * - Hand-off (queue/queue.ts `LocalTaker`): a task enqueued in this process is stored already
 *   claimed by this producer, saving the claim's round trip, when the producer is idle (no claim
 *   in flight, and its last claim found nothing more: no older task waits) and has room for it
 *   within the limits above. Only plain tasks: due now, no dependencies, parent, idempotency key
 *   or concurrency key, of an action without flow-control limits; the insert leaves a paused
 *   action's task queued. The room is reserved while the insert is in flight, so hand-offs and
 *   claims together never hold more than `concurrency + prefetch`.
 * - Start times: a claim records when the task was claimed (`claimed_at`); when a buffered task
 *   starts, its record here gets `startedAt`, which reaches the database with its result or the
 *   next lease renewal (no write of its own), so buffer time never counts as running time.
 * - On stop: claim nothing more, give unstarted buffered tasks back, let running handlers finish
 *   within the grace period, then abort the rest (the runner gives them back too).
 */
import type { Logger } from 'pino';
import { actionLimitsOf, type ActionLimits, type LimitedClaim, type RateLimit } from '../core/flow.js';
import { hasGraph, type NewTask, type TaskRecord } from '../core/task.js';
import type { QueueDriver, Unsubscribe } from '../drivers/driver.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { LocalTaker, Reservation } from '../queue/queue.js';
import type { DbHealth } from './db-health.js';
import { TaskAbort, TaskAbortHandle } from './executor.js';
import { giveBack } from './leases.js';
import { delay, Ticker } from './timers.js';
import { Signals } from './signals.js';

export interface ProducerOptions {
  driver: QueueDriver;
  registry: HandlerRegistry;
  logger: Logger;
  owner: string;
  concurrency: number;
  prefetch: number;
  leaseMs: number;
  pollMs: number;
  now: () => number;
  health: DbHealth;
  /** Rate limits by action from the settings (`--rate-limit`); they win over the handlers' own. */
  rateLimits?: ReadonlyMap<string, RateLimit>;
  /** True while nothing more may be claimed (the completer's backlog is full); wake() after. */
  claimsPaused?: () => boolean;
  /** Runs one task to its recorded end; its slot frees when this settles. */
  run: (task: TaskRecord, abort: TaskAbortHandle) => Promise<void>;
  /** Records a held task that never started as cancelled (through the completer). */
  recordCancelled: (task: TaskRecord, message: string) => void;
}

/** Signals for the pool and for tests. */
export interface ProducerEvents {
  claimed: [tasks: TaskRecord[]];
  taskStarted: [task: TaskRecord];
  /** A claim was answered with `count` tasks (0 included) of the `limit` asked for. */
  claimReturned: [count: number, limit: number];
  /**
   * A wake-up that did not claim: no room left, the buffer still above half of prefetch, or
   * results waiting to be written.
   */
  claimSkipped: [reason: 'no_room' | 'buffer_above_half' | 'results_backlog'];
  /** A claim left ready tasks of these limited actions queued (rate limit or per-key cap). */
  claimLimited: [limited: LimitedClaim[]];
  /** Tasks enqueued in this process were stored claimed by this producer (after `claimed`). */
  handedOff: [tasks: TaskRecord[]];
}

const CANCELLED = 'cancelled by request';
const CLAIM_RETRY_MIN_MS = 100;
const CLAIM_RETRY_MAX_MS = 5000;

const countOf = (counts: ReadonlyMap<string, number>, action: string): number => counts.get(action) ?? 0;

interface RunningTask {
  task: TaskRecord;
  abort: TaskAbortHandle;
  done: Promise<void>;
}

export class Producer extends Signals<ProducerEvents> implements LocalTaker {
  private readonly buffer: TaskRecord[] = [];
  /** Room promised to inserts in flight (hand-off), in all and of each limited action. */
  private reserved = 0;
  private readonly reservedByAction = new Map<string, number>();
  /** Per-action concurrency limits from the handlers (`concurrency` in a handler module). */
  private readonly actionLimits: Map<string, number>;
  /** Running + buffered tasks of each limited action. */
  private readonly heldByAction = new Map<string, number>();
  /** Flow-control limits of the actions that have them (core/flow.ts); empty for most queues. */
  readonly flowLimits: readonly ActionLimits[];
  /** The claim that waits for a rate-limited action's next token. */
  private tokenWait: { at: number; timer: NodeJS.Timeout } | null = null;
  private readonly running = new Map<string, RunningTask>();
  private readonly unsubscribes: Unsubscribe[] = [];
  private readonly poll: Ticker;
  private fetching = false;
  /** Cancel requests for tasks not held, heard while a claim was in flight: it may return them. */
  private cancelsDuringClaim: Set<string> | null = null;
  private fetchScheduled = false;
  /** The last claim came back full, or something woke us since: more work is likely there. */
  private moreLikely = true;
  /** Whether the last claim found nothing since tasks last came in (logged once per such change). */
  private foundEmpty = false;
  private stopping = false;
  /** The wait before the next claim after a failed one, and the timer of that claim. */
  private claimRetryMs = CLAIM_RETRY_MIN_MS;
  private claimRetry: NodeJS.Timeout | null = null;

  constructor(private readonly options: ProducerOptions) {
    super();
    this.actionLimits = new Map(
      options.registry
        .all()
        .filter((h) => h.concurrency !== undefined)
        .map((h) => [h.action, h.concurrency as number]),
    );
    this.flowLimits = actionLimitsOf(options.registry.all(), options.rateLimits);
    this.poll = new Ticker(options.pollMs, () => this.wake());
  }

  /** Tasks held: running plus buffered. */
  get held(): { running: number; buffered: number } {
    return { running: this.running.size, buffered: this.buffer.length };
  }

  /** Every task held, running or buffered (the lease keeper renews these). */
  heldTasks(): TaskRecord[] {
    return [...[...this.running.values()].map((r) => r.task), ...this.buffer];
  }

  start(): void {
    const { driver } = this.options;
    this.unsubscribes.push(
      driver.on('tasksQueued', () => this.wake()),
      driver.on('cancelRequested', ({ ids }) => this.cancel(ids)),
    );
    if (this.flowLimits.some((l) => l.concurrencyPerKey !== undefined))
      this.unsubscribes.push(driver.on('tasksChanged', () => this.wake()));
    this.poll.start();
    this.wake();
  }

  /** Something may be claimable: claim on the next turn of the event loop (coalescing many wakes). */
  wake(): void {
    this.moreLikely = true;
    this.scheduleFetch();
  }

  /**
   * A cancel was requested for these tasks: abort the running ones; drop the buffered ones and
   * record them cancelled, so their handlers never start. Ids not held are ignored, except that
   * a claim in flight is checked for them when it returns.
   */
  cancel(ids: Iterable<string>): void {
    for (const id of ids) {
      const entry = this.running.get(id);
      if (entry) {
        entry.abort.abort(new TaskAbort('cancel', CANCELLED));
        continue;
      }
      const i = this.buffer.findIndex((t) => t.id === id);
      if (i >= 0) this.dropCancelled(this.buffer.splice(i, 1)[0] as TaskRecord);
      else this.cancelsDuringClaim?.add(id);
    }
  }

  private dropCancelled(task: TaskRecord): void {
    this.unhold(task);
    this.options.recordCancelled(task, CANCELLED);
  }

  /**
   * These tasks' leases are gone (rescued elsewhere): abort the running ones, drop the buffered
   * ones without a word to the database, since they are not ours any more.
   */
  leaseLost(ids: Iterable<string>): void {
    const lost = new Set(ids);
    for (const id of lost) {
      this.abort(id, new TaskAbort('lease_lost', 'lease lost (the worker stalled past its lease)'));
    }
    for (let i = this.buffer.length - 1; i >= 0; i--) {
      const task = this.buffer[i] as TaskRecord;
      if (lost.has(task.id)) {
        this.buffer.splice(i, 1);
        this.unhold(task);
      }
    }
  }

  private abort(id: string, reason: TaskAbort): void {
    this.running.get(id)?.abort.abort(reason);
  }

  /**
   * Claims on the next turn of the event loop, never in the same microtask chain: with a
   * synchronous driver and fast handlers, claim -> run -> claim would otherwise loop in microtasks
   * alone, starving timers (acks, heartbeats, task timeouts) and, in an `all` process, HTTP.
   */
  private scheduleFetch(): void {
    if (this.fetchScheduled || this.stopping) return;
    this.fetchScheduled = true;
    setImmediate(() => {
      this.fetchScheduled = false;
      void this.fetch();
    });
  }

  private room(): number {
    const { concurrency, prefetch } = this.options;
    return concurrency + prefetch - this.running.size - this.buffer.length - this.reserved;
  }

  /** Which of `tasks`, about to be inserted, this producer takes (see Hand-off above). */
  reserve(tasks: readonly NewTask[]): Reservation | null {
    if (this.stopping || this.fetching || this.moreLikely || this.options.claimsPaused?.()) return null;
    const now = this.options.now();
    let room = this.room();
    const byAction = new Map<string, number>();
    const take = tasks.map((task) => {
      if (room <= 0 || !this.canTake(task, now)) return false;
      const limit = this.actionLimits.get(task.action);
      if (limit !== undefined) {
        if (this.heldOrReserved(task.action) + countOf(byAction, task.action) >= limit) return false;
        byAction.set(task.action, countOf(byAction, task.action) + 1);
      }
      room--;
      return true;
    });
    const count = take.filter(Boolean).length;
    if (count === 0) return null;
    const adjust = (sign: 1 | -1) => {
      this.reserved += sign * count;
      for (const [action, n] of byAction)
        this.reservedByAction.set(action, countOf(this.reservedByAction, action) + sign * n);
    };
    adjust(1);
    let settled = false;
    const { owner, leaseMs } = this.options;
    return {
      claim: { owner, leaseMs, take, now },
      settle: (claimed) => {
        if (settled) return;
        settled = true;
        adjust(-1);
        this.adopt(claimed);
      },
    };
  }

  private canTake(task: NewTask, now: number): boolean {
    return (
      task.runAt <= now &&
      !hasGraph(task) &&
      task.uniqueKey === null &&
      (task.concurrencyKey ?? null) === null &&
      !this.flowLimits.some((l) => l.action === task.action)
    );
  }

  /** Tasks of a limited action held (running or buffered) or reserved for inserts in flight. */
  private heldOrReserved(action: string): number {
    return countOf(this.heldByAction, action) + countOf(this.reservedByAction, action);
  }

  /** Tasks an insert stored claimed by this producer: held as if a claim had returned them. */
  private adopt(claimed: TaskRecord[]): void {
    if (claimed.length === 0) return;
    this.noteEmpty(false);
    this.options.logger.debug({ tasks: claimed.map((t) => t.id) }, 'took tasks as they were stored');
    void this.hold(claimed, null); // giving back never rejects (leases.ts)
    this.emit('handedOff', claimed);
  }

  /**
   * Claimed tasks (by a claim or a hand-off) join the buffer and start as slots free; those over
   * their action's limit, or any while stopping, go back to the queue.
   */
  private async hold(claimed: TaskRecord[], cancelled: Set<string> | null): Promise<void> {
    this.emit('claimed', claimed);
    if (this.stopping) return this.giveBack(claimed);
    const overflow = this.accept(claimed, cancelled);
    this.dispatch();
    await this.giveBack(overflow);
  }

  private async fetch(): Promise<void> {
    if (this.fetching || this.stopping || !this.moreLikely) return;
    const limit = this.room();
    if (limit <= 0) {
      this.emit('claimSkipped', 'no_room');
      return;
    }
    if (this.options.claimsPaused?.()) {
      this.emit('claimSkipped', 'results_backlog');
      return;
    }
    // Refill only when the buffer is down to half of prefetch, so claims come in batches.
    if (this.buffer.length > Math.floor(this.options.prefetch / 2)) {
      this.emit('claimSkipped', 'buffer_above_half');
      return;
    }
    this.fetching = true;
    this.moreLikely = false;
    this.cancelsDuringClaim = new Set();
    let claimed: TaskRecord[] = [];
    let failed = false;
    try {
      claimed = await this.options.driver.claimTasks({
        owner: this.options.owner,
        limit,
        now: this.options.now(),
        leaseMs: this.options.leaseMs,
        excludeActions: this.actionsAtLimit(),
        ...(this.flowLimits.length > 0 && {
          limits: [...this.flowLimits],
          onLimited: (limited: LimitedClaim[]) => this.limited(limited),
        }),
      });
      this.options.health.success();
      this.claimRetryMs = CLAIM_RETRY_MIN_MS;
      this.emit('claimReturned', claimed.length, limit);
    } catch (err) {
      this.options.health.error(err, 'claiming tasks failed');
      failed = true;
    } finally {
      this.fetching = false;
    }
    if (failed) return this.retryClaimLater();
    // Nothing awaits from here to accept(): no cancel can come in between.
    const cancelled = this.cancelsDuringClaim;
    this.cancelsDuringClaim = null;
    if (claimed.length === limit) this.moreLikely = true;
    this.noteEmpty(claimed.length === 0);
    if (claimed.length > 0) await this.hold(claimed, cancelled);
    if (this.moreLikely) this.scheduleFetch();
  }

  /**
   * Logs (debug) when claims start finding nothing, once until tasks come in again: from then on
   * the producer waits to be woken, and an idle one takes tasks enqueued here as they are stored.
   */
  private noteEmpty(empty: boolean): void {
    if (empty && !this.foundEmpty) this.options.logger.debug('claim found no task: idle until woken');
    this.foundEmpty = empty;
  }

  /** A claim held tasks back: say so, and claim again when a rate-limited bucket has a token. */
  private limited(limited: LimitedClaim[]): void {
    this.emit('claimLimited', limited);
    const at = Math.min(...limited.map((l) => l.retryAt ?? Infinity));
    if (!Number.isFinite(at) || this.stopping || (this.tokenWait && this.tokenWait.at <= at)) return;
    if (this.tokenWait) clearTimeout(this.tokenWait.timer);
    const timer = setTimeout(
      () => {
        this.tokenWait = null;
        this.wake();
      },
      Math.max(0, at - this.options.now()),
    );
    timer.unref();
    this.tokenWait = { at, timer };
  }

  private retryClaimLater(): void {
    if (this.claimRetry || this.stopping) return;
    const waitMs = this.claimRetryMs;
    this.claimRetryMs = Math.min(waitMs * 2, CLAIM_RETRY_MAX_MS);
    this.claimRetry = setTimeout(() => {
      this.claimRetry = null;
      this.wake();
    }, waitMs);
    this.claimRetry.unref();
  }

  /** Actions whose per-action concurrency limit is reached by the tasks this producer holds. */
  private actionsAtLimit(): string[] | undefined {
    if (this.actionLimits.size === 0) return undefined;
    return [...this.actionLimits]
      .filter(([action, limit]) => this.heldOrReserved(action) >= limit)
      .map(([a]) => a);
  }

  /**
   * Buffers claimed tasks; returns those over their action's limit (a claim can return several of
   * one limited action), which go straight back to the queue. A task whose cancel was requested
   * before it got here is recorded cancelled instead of buffered.
   */
  private accept(claimed: TaskRecord[], cancelled: Set<string> | null): TaskRecord[] {
    const overflow: TaskRecord[] = [];
    for (const task of claimed) {
      if (task.cancelRequested || cancelled?.has(task.id)) {
        this.options.recordCancelled(task, CANCELLED);
        continue;
      }
      const limit = this.actionLimits.get(task.action);
      const held = this.heldByAction.get(task.action) ?? 0;
      if (limit !== undefined && held >= limit) {
        overflow.push(task);
        continue;
      }
      if (limit !== undefined) this.heldByAction.set(task.action, held + 1);
      this.buffer.push(task);
    }
    return overflow;
  }

  private unhold(task: TaskRecord): void {
    const held = this.heldByAction.get(task.action);
    if (held !== undefined) this.heldByAction.set(task.action, Math.max(0, held - 1));
  }

  private dispatch(): void {
    while (!this.stopping && this.running.size < this.options.concurrency && this.buffer.length > 0) {
      this.startTask(this.buffer.shift() as TaskRecord);
    }
  }

  private startTask(task: TaskRecord): void {
    task.startedAt = this.options.now();
    const abort = new TaskAbortHandle();
    const entry: RunningTask = { task, abort, done: Promise.resolve() };
    this.running.set(task.id, entry);
    this.emit('taskStarted', task);
    entry.done = this.options.run(task, abort).finally(() => {
      this.running.delete(task.id);
      this.unhold(task);
      this.dispatch();
      this.scheduleFetch();
    });
  }

  private giveBack(tasks: TaskRecord[]): Promise<void> {
    return giveBack(this.options.driver, this.options.owner, tasks, this.options.logger);
  }

  /**
   * No more claims; unstarted tasks go back to the queue; running handlers get `graceMs` to
   * finish, then are aborted (and given back by the runner). Cancel requests are still heeded
   * meanwhile. Resolves when every running task has ended.
   */
  async stop({ graceMs }: { graceMs: number }): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.poll.stop();
    if (this.claimRetry) clearTimeout(this.claimRetry);
    this.claimRetry = null;
    if (this.tokenWait) clearTimeout(this.tokenWait.timer);
    this.tokenWait = null;
    const unstarted = this.buffer.splice(0);
    unstarted.forEach((task) => this.unhold(task));
    await this.giveBack(unstarted);
    const allDone = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (this.running.size > 0) {
      this.options.logger.info(
        { running: this.running.size, graceMs },
        'waiting for running tasks to finish',
      );
      const finished = await Promise.race([allDone().then(() => true), delay(graceMs).then(() => false)]);
      if (!finished) {
        const abort = new TaskAbort('shutdown', 'the worker is shutting down');
        for (const id of this.running.keys()) this.abort(id, abort);
        await allDone();
      }
    }
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }
}
