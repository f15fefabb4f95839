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
import type { HandlerRegistry } from '../handlers/registry.js';
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

  private async progress(lease: LeaseRef, percent: number, message?: string): Promise<void> {
    if (!Number.isFinite(percent)) throw new TypeError('progress must be a number from 0 to 100');
    const progress = Math.max(0, Math.min(100, Math.round(percent)));
    await this.options.driver.setProgress({ ...lease, progress, message: message ?? null });
  }
}
