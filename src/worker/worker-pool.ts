/**
 * The worker pool of one process: claims tasks, runs them, and writes their outcomes.
 *
 * Policy (the original tutorial's consumer: concurrency 2, prefetch 5):
 * - At most `concurrency` handlers run at once, and at most `prefetch` more tasks wait claimed in
 *   memory. So at most `concurrency + prefetch` tasks are held by this process at any moment.
 * - Claims are batched: the pool claims as many tasks as it has room for in one transaction, and
 *   claims again when its buffer falls to half of `prefetch` (not after every task), which keeps
 *   a fast queue at a few claims per batch instead of one per task.
 * - Every claimed task carries a lease (`leaseMs`) in this pool's name. A heartbeat renews all of
 *   them in one statement every `leaseMs / 3`; a task the heartbeat no longer finds has been
 *   rescued elsewhere (this process stalled), and its handler is aborted. The rescuer, which every
 *   pool runs, returns tasks with expired leases to `queued` (or `failed` when out of attempts).
 * - The pool claims when woken (a task was queued in this process, or by NOTIFY on PostgreSQL),
 *   when its last claim came back full, and every `pollMs` otherwise, so delayed tasks, retries
 *   and tasks queued by other processes are found within `pollMs`.
 * - A handler may set its own `concurrency`: at most that many tasks of its action are held
 *   (running or buffered) by this pool; claims skip actions at their limit, and a claim that
 *   returns more of one such action than it has room for gives the extra tasks straight back.
 * - Outcomes go through the Completer, which batches acks and nacks into few transactions.
 * - On stop: claim nothing more, give unstarted prefetched tasks back, let running handlers
 *   finish within the grace period, then abort the rest and give them back too.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { decideRetry, type BackoffPolicy } from '../core/retry.js';
import type { TaskRecord } from '../core/task.js';
import type { LeaseRef, QueueDriver, Unsubscribe } from '../drivers/driver.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { Completer } from './completer.js';
import { execute, TaskAbort, TaskAbortHandle, type Outcome } from './executor.js';

export const ACK_DELAY_MS_DEFAULT = 10;

export interface WorkerPoolOptions {
  driver: QueueDriver;
  registry: HandlerRegistry;
  logger: Logger;
  concurrency: number;
  prefetch: number;
  leaseMs: number;
  pollMs: number;
  taskTimeoutMs: number;
  backoff: BackoffPolicy;
  /** How long acks wait to be batched. */
  ackDelayMs?: number;
  /** Identifies this pool in leases; unique per process by default. */
  owner?: string;
}

/** Events for tests and metrics; tests await these instead of sleeping. */
export interface WorkerPoolEvents {
  claimed: [tasks: TaskRecord[]];
  taskStarted: [task: TaskRecord];
  taskFinished: [task: TaskRecord, outcome: Outcome, durationMs: number];
  rescued: [result: { requeued: string[]; failed: string[] }];
  resultsWritten: [count: number];
}

interface RunningTask {
  task: TaskRecord;
  abort: TaskAbortHandle;
  done: Promise<void>;
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly owner: string;
  private readonly driver: QueueDriver;
  private readonly completer: Completer;
  private readonly buffer: TaskRecord[] = [];
  /** Per-action concurrency limits from the handlers (`concurrency` in a handler module). */
  private readonly actionLimits: Map<string, number>;
  /** Running + buffered tasks of each limited action. */
  private readonly heldByAction = new Map<string, number>();
  private readonly running = new Map<string, RunningTask>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribes: Unsubscribe[] = [];
  private fetching = false;
  private fetchScheduled = false;
  /** The last claim came back full, or something woke us since: more work is likely there. */
  private moreLikely = true;
  private stopping = false;
  private started = false;
  private lastDbSuccessAt = Date.now();
  private lastDbError: Error | null = null;

  constructor(private readonly options: WorkerPoolOptions) {
    super();
    this.driver = options.driver;
    this.actionLimits = new Map(
      options.registry
        .all()
        .filter((h) => h.concurrency !== undefined)
        .map((h) => [h.action, h.concurrency as number]),
    );
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.completer = new Completer({
      driver: this.driver,
      logger: options.logger,
      // Each ack batch is an fsync'd commit that blocks the event loop (synchronous SQLite): at
      // 2 ms the fsyncs alone took a large share of a fast drain. 10 ms keeps results visible
      // promptly while batching ~5x more per commit.
      delayMs: options.ackDelayMs ?? ACK_DELAY_MS_DEFAULT,
      maxBatch: 1000,
      onWritten: ({ completions, failures }) =>
        this.emit('resultsWritten', completions.length + failures.length),
    });
  }

  /** Tasks held by this pool: running plus buffered. */
  get held(): { running: number; buffered: number } {
    return { running: this.running.size, buffered: this.buffer.length };
  }

  /**
   * Healthy while the pool can reach the database: a stalled worker (claims and heartbeats failing
   * for longer than a lease) reports unhealthy so an orchestrator can restart it.
   */
  health(): { ok: boolean; reason?: string } {
    if (!this.started || this.stopping) return { ok: false, reason: 'worker pool is not running' };
    const silentMs = Date.now() - this.lastDbSuccessAt;
    const limit = Math.max(this.options.leaseMs, this.options.pollMs * 3);
    if (this.lastDbError && silentMs > limit) {
      return { ok: false, reason: `cannot claim work for ${silentMs} ms: ${this.lastDbError.message}` };
    }
    return { ok: true };
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const { leaseMs, pollMs } = this.options;
    this.unsubscribes.push(
      this.driver.on('tasksQueued', () => this.wake()),
      this.driver.on('cancelRequested', ({ ids }) => {
        for (const id of ids) this.abortTask(id, new TaskAbort('cancel', 'cancelled by request'));
      }),
    );
    this.every(pollMs, () => this.wake());
    this.every(Math.max(50, Math.floor(leaseMs / 3)), () => this.heartbeat());
    this.every(Math.max(100, Math.floor(leaseMs / 2)), () => this.rescue());
    this.wake();
  }

  private every(ms: number, fn: () => unknown): void {
    const timer = setInterval(() => void fn(), ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Something may be claimable: claim on the next turn of the event loop (coalescing many wakes). */
  wake(): void {
    this.moreLikely = true;
    this.scheduleFetch();
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
    return this.options.concurrency + this.options.prefetch - this.running.size - this.buffer.length;
  }

  private async fetch(): Promise<void> {
    if (this.fetching || this.stopping || !this.moreLikely) return;
    const limit = this.room();
    // Refill only when the buffer is down to half of prefetch, so claims come in batches.
    if (limit <= 0 || this.buffer.length > Math.floor(this.options.prefetch / 2)) return;
    this.fetching = true;
    this.moreLikely = false;
    let claimed: TaskRecord[] = [];
    try {
      claimed = await this.driver.claimTasks({
        owner: this.owner,
        limit,
        now: Date.now(),
        leaseMs: this.options.leaseMs,
        excludeActions: this.actionsAtLimit(),
      });
      this.markDbSuccess();
    } catch (err) {
      this.markDbError(err, 'claiming tasks failed');
    } finally {
      this.fetching = false;
    }
    if (claimed.length === limit) this.moreLikely = true;
    if (claimed.length > 0) {
      this.emit('claimed', claimed);
      if (this.stopping) {
        await this.giveBack(claimed);
        return;
      }
      const overflow = this.accept(claimed);
      if (overflow.length > 0) await this.giveBack(overflow);
      this.dispatch();
    }
    if (this.moreLikely) this.scheduleFetch();
  }

  /** Actions whose per-action concurrency limit is reached by the tasks this pool holds. */
  private actionsAtLimit(): string[] | undefined {
    if (this.actionLimits.size === 0) return undefined;
    return [...this.actionLimits]
      .filter(([action, limit]) => (this.heldByAction.get(action) ?? 0) >= limit)
      .map(([a]) => a);
  }

  /**
   * Buffers claimed tasks; returns those over their action's limit (a claim can return several of
   * one limited action), which go straight back to the queue.
   */
  private accept(claimed: TaskRecord[]): TaskRecord[] {
    const overflow: TaskRecord[] = [];
    for (const task of claimed) {
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
    const abort = new TaskAbortHandle();
    const entry: RunningTask = { task, abort, done: Promise.resolve() };
    this.running.set(task.id, entry);
    this.emit('taskStarted', task);
    entry.done = this.run(task, abort).finally(() => {
      this.running.delete(task.id);
      this.unhold(task);
      this.dispatch();
      this.scheduleFetch();
    });
  }

  private async run(task: TaskRecord, abort: TaskAbortHandle): Promise<void> {
    const startedAt = performance.now();
    // Created on first use: most tasks never log, and a pino child per task is not free.
    let child: Logger | undefined;
    const logger = () =>
      (child ??= this.options.logger.child({ taskId: task.id, action: task.action, attempt: task.attempts }));
    const handler = this.options.registry.resolve(task.action);
    const lease: LeaseRef = { id: task.id, seq: task.seq, owner: this.owner, attempt: task.attempts };
    let outcome: Outcome;
    if (!handler) {
      outcome = {
        kind: 'failed',
        error: `no handler for action "${task.action}" on this worker`,
        permanent: true,
      };
    } else {
      outcome = await execute(task, handler, {
        abort,
        timeoutMs: handler.timeoutMs ?? this.options.taskTimeoutMs,
        logger,
        progress: (percent, message) => this.progress(lease, percent, message),
      });
    }
    await this.record(task, lease, outcome, handler?.backoff ?? this.options.backoff, logger);
    this.emit('taskFinished', task, outcome, performance.now() - startedAt);
  }

  private async record(
    task: TaskRecord,
    lease: LeaseRef,
    outcome: Outcome,
    backoff: BackoffPolicy,
    logger: () => Logger,
  ): Promise<void> {
    switch (outcome.kind) {
      case 'completed':
        this.completer.complete({ ...lease, result: outcome.result });
        return;
      case 'failed': {
        const decision = decideRetry(task, outcome, backoff, Date.now());
        const retry = decision.retry;
        logger().warn({ err: outcome.error, retry }, retry ? 'task failed; will retry' : 'task failed');
        this.completer.fail({
          ...lease,
          error: outcome.error,
          outcome: retry ? 'retry' : 'failed',
          retryAt: decision.retry ? decision.retryAt : undefined,
        });
        return;
      }
      case 'aborted': {
        const { abort } = outcome;
        if (abort.kind === 'cancel')
          this.completer.fail({ ...lease, error: abort.message, outcome: 'cancelled' });
        else if (abort.kind === 'timeout') {
          const decision = decideRetry(task, outcome, backoff, Date.now());
          logger().warn({ retry: decision.retry }, `task ${abort.message}`);
          this.completer.fail({
            ...lease,
            error: abort.message,
            outcome: decision.retry ? 'retry' : 'failed',
            retryAt: decision.retry ? decision.retryAt : undefined,
          });
        } else if (abort.kind === 'shutdown') await this.giveBack([task]);
        // lease_lost: the task belongs to the rescuer now; writing anything would be wrong.
        else logger().warn('lease lost while running; the task will run again elsewhere');
      }
    }
  }

  private async progress(lease: LeaseRef, percent: number, message?: string): Promise<void> {
    if (!Number.isFinite(percent)) throw new TypeError('progress must be a number from 0 to 100');
    const progress = Math.max(0, Math.min(100, Math.round(percent)));
    await this.driver.setProgress({ ...lease, progress, message: message ?? null });
  }

  private abortTask(id: string, reason: TaskAbort): void {
    const entry = this.running.get(id);
    entry?.abort.abort(reason);
  }

  private async heartbeat(): Promise<void> {
    if (this.running.size === 0 && this.buffer.length === 0) return;
    // Judge only tasks held before the statement was sent. A claim that commits while it runs is
    // missing from its answer on PostgreSQL (the UPDATE sees rows as of its start), yet that
    // task's lease is fresh; aborting it would strand it until its lease expires and run it twice.
    const asked = new Set([...this.running.keys(), ...this.buffer.map((t) => t.id)]);
    let held;
    try {
      held = await this.driver.extendLeases({
        owner: this.owner,
        now: Date.now(),
        leaseMs: this.options.leaseMs,
      });
      this.markDbSuccess();
    } catch (err) {
      this.markDbError(err, 'renewing leases failed');
      return;
    }
    const stillHeld = new Map(held.map((h) => [h.id, h]));
    for (const [id] of this.running) {
      const h = stillHeld.get(id);
      if (!h && !asked.has(id)) continue;
      if (!h)
        this.abortTask(id, new TaskAbort('lease_lost', 'lease lost (the worker stalled past its lease)'));
      else if (h.cancelRequested) this.abortTask(id, new TaskAbort('cancel', 'cancelled by request'));
    }
    for (let i = this.buffer.length - 1; i >= 0; i--) {
      const task = this.buffer[i] as TaskRecord;
      if (asked.has(task.id) && !stillHeld.has(task.id)) {
        this.buffer.splice(i, 1);
        this.unhold(task);
      }
    }
  }

  private async rescue(): Promise<void> {
    try {
      const result = await this.driver.rescueExpiredLeases({ now: Date.now() });
      if (result.requeued.length + result.failed.length > 0) {
        this.options.logger.warn(result, 'rescued tasks whose lease expired');
        this.emit('rescued', result);
      }
    } catch (err) {
      this.markDbError(err, 'rescuing expired leases failed');
    }
  }

  private async giveBack(tasks: TaskRecord[]): Promise<void> {
    try {
      await this.driver.releaseTasks({
        tasks: tasks.map((t) => ({ id: t.id, seq: t.seq, owner: this.owner, attempt: t.attempts })),
      });
    } catch (err) {
      // Their leases will expire and the rescuer will requeue them.
      this.options.logger.error({ err }, 'giving tasks back failed; their leases will expire instead');
    }
  }

  private markDbSuccess(): void {
    this.lastDbSuccessAt = Date.now();
    this.lastDbError = null;
  }

  private markDbError(err: unknown, message: string): void {
    this.lastDbError = err instanceof Error ? err : new Error(String(err));
    this.options.logger.error({ err }, message);
  }

  /**
   * Graceful stop: no more claims; unstarted tasks go back to the queue; running handlers get
   * `graceMs` to finish, then are aborted and given back. Resolves when every outcome is written.
   */
  async stop({ graceMs }: { graceMs: number }): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
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
        for (const id of this.running.keys()) this.abortTask(id, abort);
        await allDone();
      }
    }
    await this.completer.flush();
    this.started = false;
  }
}

const delay = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });
