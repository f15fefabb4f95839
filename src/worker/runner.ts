/**
 * Runs one dispatched task and records how it ended: completions and failures go to the
 * Completer (retry or final as `decideRetry` in core says), a cancel is recorded cancelled, a
 * shutdown gives the task back unspent, and a lost lease writes nothing (the task belongs to the
 * rescuer then). The producer decides what runs when; this only runs it.
 */
import type { Logger } from 'pino';
import { decideRetry, type BackoffPolicy } from '../core/retry.js';
import type { TaskRecord } from '../core/task.js';
import type { LeaseRef, QueueDriver } from '../drivers/driver.js';
import { WaitForChildren } from '../core/errors.js';
import type { ChildOptions, ChildTask, HandlerContext } from '../handlers/handler.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { TaskQueue } from '../queue/queue.js';
import type { Completer } from './completer.js';
import { execute, type Outcome, type TaskAbortHandle } from './executor.js';
import { giveBack, leaseOf } from './leases.js';
import { Signals } from './signals.js';
import { activeTracer } from '../queue/tracing.js';
import { AttemptSpan } from './tracing.js';

export interface TaskRunnerOptions {
  driver: QueueDriver;
  registry: HandlerRegistry;
  logger: Logger;
  completer: Completer;
  owner: string;
  taskTimeoutMs: number;
  backoff: BackoffPolicy;
  now: () => number;
  /** Where ctx.enqueue puts children and ctx.children reads them. */
  queue: TaskQueue;
}

/** The lease of a running task, with when its handler started. */
type StartedLease = LeaseRef & { startedAt?: number };

export interface TaskRunnerEvents {
  taskFinished: [task: TaskRecord, outcome: Outcome, durationMs: number];
}

export class TaskRunner extends Signals<TaskRunnerEvents> {
  constructor(private readonly options: TaskRunnerOptions) {
    super();
  }

  async run(task: TaskRecord, abort: TaskAbortHandle): Promise<void> {
    const startedAt = performance.now();
    // Created on first use: most tasks never log, and a pino child per task is not free.
    let child: Logger | undefined;
    const logger = () =>
      (child ??= this.options.logger.child({ taskId: task.id, action: task.action, attempt: task.attempts }));
    const handler = this.options.registry.resolve(task.action);
    // The outcome carries the handler's start (set by the producer), so it needs no write of its own.
    const lease = { ...leaseOf(task, this.options.owner), startedAt: task.startedAt ?? undefined };
    // Spans only when an SDK is registered: untraced, this is one check (queue/tracing.ts).
    const tracer = activeTracer();
    const span = tracer ? new AttemptSpan(tracer, task, this.options.owner) : undefined;
    let outcome: Outcome;
    if (!handler) {
      outcome = {
        kind: 'failed',
        error: `no handler for action "${task.action}" on this worker`,
        permanent: true,
      };
    } else {
      const options = {
        abort,
        timeoutMs: handler.timeoutMs ?? this.options.taskTimeoutMs,
        logger,
        progress: (percent: number, message?: string) => this.progress(lease, percent, message),
        ...this.family(task),
        children: () => this.children(task),
      };
      outcome = await (span
        ? span.run(() => execute(task, handler, options))
        : execute(task, handler, options));
    }
    const retry = await this.record(task, lease, outcome, handler?.backoff ?? this.options.backoff, logger);
    span?.end(outcome, retry);
    this.emit('taskFinished', task, outcome, performance.now() - startedAt);
  }

  /** Records how the attempt ended; returns whether a failed attempt is retried (else undefined). */
  private async record(
    task: TaskRecord,
    lease: StartedLease,
    outcome: Outcome,
    backoff: BackoffPolicy,
    logger: () => Logger,
  ): Promise<boolean | undefined> {
    const { completer } = this.options;
    switch (outcome.kind) {
      case 'completed':
        completer.complete({ ...lease, result: outcome.result });
        return undefined;
      case 'failed': {
        const retry = this.failOrRetry(task, lease, outcome, outcome.error, backoff, outcome.stack);
        logger().warn({ err: outcome.error, retry }, retry ? 'task failed; will retry' : 'task failed');
        return retry;
      }
      case 'waiting':
        await this.waitForChildren(lease, logger);
        return undefined;
      case 'aborted': {
        const { abort } = outcome;
        if (abort.kind === 'cancel')
          completer.fail({ ...lease, error: abort.message, outcome: 'cancelled', ended: 'cancelled' });
        else if (abort.kind === 'timeout') {
          const retry = this.failOrRetry(task, lease, outcome, abort.message, backoff);
          logger().warn({ retry }, `task ${abort.message}`);
          return retry;
        } else if (abort.kind === 'shutdown')
          await giveBack(this.options.driver, this.options.owner, [task], this.options.logger);
        // lease_lost: the task belongs to the rescuer now; writing anything would be wrong.
        else logger().warn('lease lost while running; the task will run again elsewhere');
        return undefined;
      }
    }
  }

  /** Records a failed attempt as a retry at its backoff or as final; returns whether it retries. */
  private failOrRetry(
    task: TaskRecord,
    lease: StartedLease,
    outcome: Outcome,
    error: string,
    backoff: BackoffPolicy,
    stack?: string,
  ): boolean {
    const decision = decideRetry(task, outcome, backoff, this.options.now());
    this.options.completer.fail({
      ...lease,
      error,
      outcome: decision.retry ? 'retry' : 'failed',
      retryAt: decision.retry ? decision.retryAt : undefined,
      ended: outcome.kind === 'aborted' ? 'timeout' : 'error',
      stack: stack ?? null,
    });
    return decision.retry;
  }

  /**
   * ctx.enqueue and ctx.waitForChildren for one run of `task`. Each child gets, unless the
   * handler names one, the idempotency key `child:<parent id>:<waits>:<n>` (the n-th call of this
   * run): a run repeated after a crash (the lease expired before the task waited or finished)
   * enqueues the same children again, and gets the ones it enqueued before instead of duplicates.
   * A wait ends the attempt unless the task has no child at all (none enqueued by this run, and
   * one index probe finds none from earlier runs): then there is nothing to wait for, and it
   * resolves at once with [] instead of requeueing the task to run again.
   */
  private family(task: TaskRecord): Pick<HandlerContext, 'enqueue' | 'waitForChildren'> {
    let calls = 0;
    return {
      enqueue: async (action, data = {}, options: ChildOptions = {}) => {
        const n = calls++;
        const { task: child } = await this.options.queue.enqueue({
          action,
          data,
          priority: options.priority,
          maxAttempts: options.maxAttempts,
          delayMs: options.delayMs,
          concurrencyKey: options.concurrencyKey,
          dependsOn: options.dependsOn,
          onDependencyFailure: options.onDependencyFailure,
          uniqueKey: options.uniqueKey ?? `child:${task.id}:${task.waits}:${n}`,
          parentId: task.id,
        });
        return { id: child.id, status: child.status };
      },
      waitForChildren: async () => {
        if (calls === 0 && (await this.options.queue.children(task.id, 1)).length === 0) return [];
        throw new WaitForChildren();
      },
    };
  }

  private async children(task: TaskRecord): Promise<ChildTask[]> {
    const children = await this.options.queue.children(task.id);
    return children.map((c) => ({
      id: c.id,
      action: c.action,
      status: c.status,
      result: c.status === 'completed' ? c.result : null,
      error: c.error,
    }));
  }

  /**
   * The attempt ended in ctx.waitForChildren: the task waits blocked for its children (one
   * transaction, in the driver). A write that fails leaves the task running under its lease,
   * which expires: the run repeats, finds its children (see childEnqueuer) and waits again.
   */
  private async waitForChildren(lease: StartedLease, logger: () => Logger): Promise<void> {
    try {
      const { outcome, error } = await this.options.driver.waitForChildren({
        ...lease,
        now: this.options.now(),
      });
      if (outcome === 'failed') logger().warn({ err: error }, 'task failed waiting for its children');
      else if (outcome === 'lease_lost')
        logger().warn('lease lost before waiting for children; the task will run again elsewhere');
    } catch (err) {
      logger().error({ err }, 'could not record the wait for children; the task will run again');
    }
  }

  private async progress(lease: LeaseRef, percent: number, message?: string): Promise<void> {
    if (!Number.isFinite(percent)) throw new TypeError('progress must be a number from 0 to 100');
    const progress = Math.max(0, Math.min(100, Math.round(percent)));
    await this.options.driver.setProgress({ ...lease, progress, message: message ?? null });
  }
}
