/**
 * The worker pool of one process: claims tasks, runs them, and writes their outcomes. It is the
 * composition of four services, each with its own file, timers and signals:
 * - the producer (producer.ts): claims, buffers and dispatches tasks; its policy (concurrency,
 *   prefetch, batching, wake-ups, per-action limits) is written at the top of that file;
 * - the lease keeper (lease-keeper.ts): renews the leases of held tasks every `leaseMs / 3` and
 *   reports lost leases and cancel requests to the producer;
 * - the rescuer (rescuer.ts): returns tasks with expired leases, anyone's, to the queue;
 * - the completer (completer.ts): batches acks and nacks into few transactions.
 * The task runner (runner.ts) runs each dispatched task and hands its outcome to the completer.
 *
 * On stop: the rescuer stops, the producer claims nothing more, gives unstarted tasks back and
 * waits up to `graceMs` for running handlers (leases are still renewed meanwhile), then aborts the
 * rest; last, the completer writes what is pending.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ActionLimits, LimitedClaim, RateLimit } from '../core/flow.js';
import type { BackoffPolicy } from '../core/retry.js';
import type { TaskRecord } from '../core/task.js';
import type { WorkerStatus } from '../core/worker-status.js';
import type { QueueDriver } from '../drivers/driver.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { ACK_DELAY_MS_DEFAULT, MAX_ATTEMPTS_DEFAULT } from '../core/config.js';
import { TaskQueue } from '../queue/queue.js';
import { Completer } from './completer.js';
import { DbHealth } from './db-health.js';
import type { Outcome } from './executor.js';
import { LeaseKeeper } from './lease-keeper.js';
import { leaseOf } from './leases.js';
import { LoopStallWatch } from './loop-stall.js';
import { Producer } from './producer.js';
import { Rescuer } from './rescuer.js';
import { TaskRunner } from './runner.js';
import { Signals } from './signals.js';

/**
 * Results waiting to be written before claims pause: twice the largest ack batch (1000), so it is
 * never reached while writes succeed, and a bound on memory while they fail.
 */
export const RESULTS_BACKLOG_MAX_DEFAULT = 2000;

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
  /**
   * Where handlers' ctx.enqueue puts children (the node's queue, so its metrics and tracing see
   * them); without one the pool makes its own on the same driver.
   */
  queue?: TaskQueue;
  /** Rate limits by action from the settings (`--rate-limit`); they win over the handlers' own. */
  rateLimits?: ReadonlyMap<string, RateLimit>;
  /** How long acks wait to be batched (`--ack-delay-ms`). @defaultValue ACK_DELAY_MS_DEFAULT */
  ackDelayMs?: number;
  /** Claims pause while this many results wait to be written. */
  resultsBacklogMax?: number;
  /** Identifies this pool in leases; unique per process by default. */
  owner?: string;
  /**
   * The time the pool tells the database (claims, leases, retry times, rescue): `Date.now` unless
   * a test injects a clock. Timers (poll, heartbeat, task timeouts) still run on real time.
   */
  now?: () => number;
  /** Called on the lease keeper's timer, alongside each renewal: the node's heartbeat (queue/nodes.ts). */
  onHeartbeat?: () => Promise<void>;
}

/** Task ids the pool reports as running at most (queue/nodes.ts NODE_TASKS_MAX). */
const ACTIVITY_IDS_MAX = 100;

/** Events for tests and metrics; tests await these instead of sleeping. */
export interface WorkerPoolEvents {
  claimed: [tasks: TaskRecord[]];
  taskStarted: [task: TaskRecord];
  taskFinished: [task: TaskRecord, outcome: Outcome, durationMs: number];
  rescued: [result: { requeued: string[]; failed: string[] }];
  resultsWritten: [count: number];
}

export class WorkerPool extends Signals<WorkerPoolEvents> implements WorkerStatus {
  readonly owner: string;
  /** The services the pool is made of; tests await their signals. */
  readonly producer: Producer;
  readonly leaseKeeper: LeaseKeeper;
  readonly rescuer: Rescuer;
  readonly completer: Completer;
  private readonly dbHealth: DbHealth;
  private readonly loopStalls: LoopStallWatch;
  /** The last heartbeat that found held tasks taken by another worker (monotonic ms). */
  private leasesLost: { count: number; at: number } | null = null;
  private stopping = false;
  private started = false;
  /** Where handlers enqueue, and whose enqueues this pool takes when it has room (hand-off). */
  private readonly queue: TaskQueue;
  private stopHandOff: () => void = () => {};

  constructor(private readonly options: WorkerPoolOptions) {
    super();
    const { driver, logger, leaseMs } = options;
    const now = options.now ?? Date.now;
    const owner = options.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.owner = owner;
    this.dbHealth = new DbHealth(logger);
    const health = this.dbHealth;
    // Half a lease: leases are renewed every third of one, so a block of two thirds can already
    // let one lapse. One lease after: by then the heartbeats have renewed what is still ours.
    this.loopStalls = new LoopStallWatch({ thresholdMs: leaseMs / 2, windowMs: leaseMs });
    this.completer = new Completer({
      driver,
      logger,
      // Each ack batch is an fsync'd commit that blocks the event loop (synchronous SQLite), so a
      // short delay spends a fast drain on fsyncs; a longer one batches more acks per commit while
      // results still show promptly (docs/benchmarks.md has the measurements).
      delayMs: options.ackDelayMs ?? ACK_DELAY_MS_DEFAULT,
      maxBatch: 1000,
      maxBacklog: options.resultsBacklogMax ?? RESULTS_BACKLOG_MAX_DEFAULT,
      now,
    });
    this.queue =
      options.queue ??
      new TaskQueue({ driver, registry: options.registry, defaultMaxAttempts: MAX_ATTEMPTS_DEFAULT });
    const runner = new TaskRunner({
      driver,
      registry: options.registry,
      logger,
      completer: this.completer,
      owner,
      taskTimeoutMs: options.taskTimeoutMs,
      backoff: options.backoff,
      now,
      queue: this.queue,
    });
    this.producer = new Producer({
      driver,
      registry: options.registry,
      logger,
      owner,
      concurrency: options.concurrency,
      prefetch: options.prefetch,
      leaseMs,
      pollMs: options.pollMs,
      rateLimits: options.rateLimits,
      now,
      health,
      claimsPaused: () => this.completer.backlogFull,
      run: (task, abort) => runner.run(task, abort),
      recordCancelled: (task, error) =>
        this.completer.fail({ ...leaseOf(task, owner), error, outcome: 'cancelled', ended: 'cancelled' }),
    });
    this.leaseKeeper = new LeaseKeeper({
      driver,
      owner,
      leaseMs,
      now,
      health,
      held: () => this.producer.heldTasks(),
      awaitingResult: () => this.completer.unwritten(),
      onLeaseLost: (ids) => {
        this.leasesLost = { count: ids.length, at: performance.now() };
        logger.warn(
          { tasks: ids },
          'leases lost: this process stalled past its lease, other workers took the tasks',
        );
        this.producer.leaseLost(ids);
      },
      onCancelRequested: (ids) => this.producer.cancel(ids),
      alongside: options.onHeartbeat,
    });
    this.rescuer = new Rescuer({ driver, logger, leaseMs, backoff: options.backoff, now, health });

    this.producer.on('claimed', (tasks) => this.emit('claimed', tasks));
    this.producer.on('taskStarted', (task) => this.emit('taskStarted', task));
    runner.on('taskFinished', (task, outcome, ms) => this.emit('taskFinished', task, outcome, ms));
    this.rescuer.on('rescued', (result) => this.emit('rescued', result));
    this.completer.on('written', ({ completions, failures }) => {
      this.emit('resultsWritten', completions.length + failures.length);
      this.producer.wake(); // claims may have waited for the backlog to shrink
    });
  }

  /** Tasks held by this pool: running plus buffered. */
  get held(): { running: number; buffered: number } {
    return this.producer.held;
  }

  /** What the pool runs now, for its node's heartbeat: counts, and the ids of the running tasks. */
  activity(): { running: number; buffered: number; tasks: string[] } {
    const { running, buffered } = this.producer.held;
    const tasks = this.producer
      .heldTasks()
      .filter((t) => t.startedAt !== null)
      .slice(0, ACTIVITY_IDS_MAX)
      .map((t) => t.id);
    return { running, buffered, tasks };
  }

  /**
   * Healthy while the pool can reach the database and keep its leases, so an orchestrator can
   * restart a worker that cannot. Unhealthy:
   * - while claims and heartbeats have failed for longer than a lease (or three polls);
   * - while the event loop is blocked for longer than half a lease, and for one lease after it
   *   frees (loop-stall.ts): its heartbeats were late, so its leases may have lapsed;
   * - for one lease after a heartbeat found held tasks taken by another worker (leases lost).
   * Each turns healthy again by itself once its cause is over.
   */
  health(): { ok: boolean; reason?: string } {
    if (!this.started || this.stopping) return { ok: false, reason: 'worker pool is not running' };
    const { leaseMs, pollMs } = this.options;
    const failing = this.dbHealth.failingFor(Math.max(leaseMs, pollMs * 3));
    if (failing) {
      return { ok: false, reason: `cannot claim work for ${failing.silentMs} ms: ${failing.error.message}` };
    }
    const stall = this.loopStalls.stall();
    if (stall) {
      return {
        ok: false,
        reason: `event loop blocked for ${stall.blockedMs} ms (longer than half the ${leaseMs} ms lease; a handler computing synchronously?)`,
      };
    }
    if (this.leasesLost && performance.now() - this.leasesLost.at <= leaseMs) {
      const { count } = this.leasesLost;
      return {
        ok: false,
        reason: `leases lost: ${count} held tasks were taken by another worker (this process stalled past its lease)`,
      };
    }
    const stuck = this.completer.stuckFor(this.options.leaseMs);
    if (stuck) {
      return {
        ok: false,
        reason: `cannot write task results for ${stuck.ms} ms (${this.completer.pending} waiting): ${stuck.error.message}`,
      };
    }
    return { ok: true };
  }

  get resultsPending(): number {
    return this.completer.pending;
  }

  resultsStuckMs(): number {
    return this.completer.stuckFor(0)?.ms ?? 0;
  }

  onTaskFinished(listener: (...args: WorkerPoolEvents['taskFinished']) => void): () => void {
    this.on('taskFinished', listener);
    return () => this.off('taskFinished', listener);
  }

  get flowLimits(): readonly ActionLimits[] {
    return this.producer.flowLimits;
  }

  onClaimLimited(listener: (limited: LimitedClaim[]) => void): () => void {
    this.producer.on('claimLimited', listener);
    return () => this.producer.off('claimLimited', listener);
  }

  onResultWriteFailed(listener: () => void): () => void {
    this.completer.on('writeFailed', listener);
    return () => this.completer.off('writeFailed', listener);
  }

  onHandedOff(listener: (tasks: TaskRecord[]) => void): () => void {
    this.producer.on('handedOff', listener);
    return () => this.producer.off('handedOff', listener);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.loopStalls.start();
    this.completer.start();
    this.leaseKeeper.start();
    this.rescuer.start();
    this.producer.start();
    this.stopHandOff = this.queue.handOffTo(this.producer);
  }

  /** Something may be claimable: claim on the next turn of the event loop (coalescing many wakes). */
  wake(): void {
    this.producer.wake();
  }

  /**
   * Graceful stop: no more claims; unstarted tasks go back to the queue; running handlers get
   * `graceMs` to finish, then are aborted and given back. Resolves when every outcome is written.
   */
  async stop({ graceMs }: { graceMs: number }): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.stopHandOff();
    this.rescuer.stop();
    await this.producer.stop({ graceMs });
    this.leaseKeeper.stop();
    await this.completer.stop();
    this.loopStalls.stop();
    this.started = false;
  }
}
