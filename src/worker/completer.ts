/**
 * Batches acks and nacks: results of tasks that finish within `delayMs` of each other are written
 * in one transaction each for completions and failures, so a fast queue pays one commit (one
 * fsync) per batch rather than per task. If the write fails (database unreachable), the batch is
 * kept and retried with backoff; meanwhile the tasks stay `running` under their lease, and if the
 * process dies first they are rescued and run again (at-least-once).
 *
 * Two things keep a failing write from growing without end:
 * - the backlog is bounded: the producer claims nothing while `backlogFull` (the pool wires it);
 * - one bad result cannot hold the rest back: a failed batch is retried one result at a time, and
 *   a result that fails alone while others succeed, with an error other than "unavailable"
 *   (gone, locked, full), is recorded as the task's failure instead (or, if even that fails,
 *   dropped with a log line: its lease expires and it runs again).
 * `stuckFor` tells /healthz and /metrics how long results have not been written.
 */
import type { Logger } from 'pino';
import { QueueError } from '../core/errors.js';
import type { Completion, Failure, LeaseRef, QueueDriver } from '../drivers/driver.js';
import { Signals } from './signals.js';

export interface CompleterOptions {
  driver: QueueDriver;
  logger: Logger;
  /** Collect for this long before writing. */
  delayMs: number;
  maxBatch: number;
  /** The producer stops claiming while this many results wait to be written. */
  maxBacklog: number;
  /** The time written as the tasks' `processed_at`; `Date.now` unless a test injects a clock. */
  now?: () => number;
}

export interface Written {
  completions: Completion[];
  failures: Failure[];
}

/** Signals for the pool and for tests. */
export interface CompleterEvents {
  /** A batch of results was committed. */
  written: [written: Written];
  /** A write failed; the results are kept and retried. */
  writeFailed: [err: Error];
}

const isUnavailable = (err: unknown) => err instanceof QueueError && err.code === 'TQ_ERR_UNAVAILABLE';

/** What a result that cannot be stored is recorded as instead (its text is kept short and plain). */
function unstorable(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `the result could not be stored: ${message.replace(/[^\x20-\x7e]/g, '?').slice(0, 500)}`;
}

export class Completer extends Signals<CompleterEvents> {
  private completions: Completion[] = [];
  private failures: Failure[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<boolean> | null = null;
  private retryDelayMs = 50;
  /** Since when writes have failed without one succeeding (wall clock), with the last error. */
  private failing: { since: number; error: Error } | null = null;
  /** After a failed batch, the next attempt writes one result at a time to find a bad one. */
  private isolateNext = false;

  constructor(private readonly options: CompleterOptions) {
    super();
  }

  /** Nothing to start: results are written as they come. Here so the pool starts every service alike. */
  start(): void {}

  /** Writes what is pending. */
  async stop(): Promise<void> {
    await this.flush();
  }

  /** How long a batch waits after its first result (`--ack-delay-ms`). */
  get delayMs(): number {
    return this.options.delayMs;
  }

  get pending(): number {
    return this.completions.length + this.failures.length;
  }

  /** The tasks whose results wait to be written (the lease keeper renews their leases). */
  unwritten(): LeaseRef[] {
    return [...this.completions, ...this.failures];
  }

  /** True while the producer should claim nothing more: results are not being written. */
  get backlogFull(): boolean {
    return this.pending >= this.options.maxBacklog;
  }

  /** How long results have failed to be written, when they have for longer than `limitMs`. */
  stuckFor(limitMs: number): { ms: number; error: Error } | null {
    const ms = this.failing ? Date.now() - this.failing.since : 0;
    return this.failing && ms > limitMs ? { ms, error: this.failing.error } : null;
  }

  complete(completion: Completion): void {
    this.completions.push(completion);
    this.schedule();
  }

  fail(failure: Failure): void {
    this.failures.push(failure);
    this.schedule();
  }

  private schedule(delayMs = this.options.delayMs): void {
    if (this.timer || this.flushing) return;
    const due = this.pending >= this.options.maxBatch ? 0 : delayMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, due);
  }

  /** Writes everything pending now; resolves when it is committed or has failed (and will be retried). */
  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending === 0) return;
    this.flushing = this.write(this.completions.splice(0), this.failures.splice(0));
    const ok = await this.flushing.finally(() => {
      this.flushing = null;
    });
    this.retryDelayMs = ok ? 50 : Math.min(this.retryDelayMs * 2, 5000);
    if (this.pending > 0) this.schedule(ok ? this.options.delayMs : this.retryDelayMs);
  }

  /** Returns false when the write failed; what was not written goes back to the front. */
  private async write(completions: Completion[], failures: Failure[]): Promise<boolean> {
    const isolate = this.isolateNext && completions.length + failures.length > 1;
    const ok = isolate
      ? await this.writeEach(completions, failures)
      : await this.writeBatch(completions, failures);
    this.isolateNext = !ok;
    if (ok) this.failing = null;
    return ok;
  }

  private async writeBatch(completions: Completion[], failures: Failure[]): Promise<boolean> {
    const now = (this.options.now ?? Date.now)();
    const written: Written = { completions: [], failures: [] };
    try {
      if (completions.length > 0) {
        await this.options.driver.completeTasks({ completions, now });
        written.completions = completions.splice(0);
      }
      if (failures.length > 0) {
        await this.options.driver.failTasks({ failures, now });
        written.failures = failures.splice(0);
      }
      return true;
    } catch (err) {
      this.failed(err, completions.length + failures.length);
      this.completions.unshift(...completions);
      this.failures.unshift(...failures);
      return false;
    } finally {
      if (written.completions.length + written.failures.length > 0) this.emit('written', written);
    }
  }

  /**
   * One result per write, after a batch failed. If none is written the database is unreachable:
   * all go back. If some are, each one that failed is bad in itself and is recorded as failed.
   */
  private async writeEach(completions: Completion[], failures: Failure[]): Promise<boolean> {
    const rejected: { result: Completion | Failure; err: unknown }[] = [];
    let wroteAny = false;
    const attempt = async (result: Completion | Failure, write: () => Promise<void>) => {
      try {
        await write();
        wroteAny = true;
        this.emit(
          'written',
          'result' in result
            ? { completions: [result], failures: [] }
            : { completions: [], failures: [result] },
        );
      } catch (err) {
        rejected.push({ result, err });
      }
    };
    const now = (this.options.now ?? Date.now)();
    for (const c of completions)
      await attempt(c, () => this.options.driver.completeTasks({ completions: [c], now }));
    for (const f of failures) await attempt(f, () => this.options.driver.failTasks({ failures: [f], now }));
    // An unavailable database (gone, locked, full) says nothing about the result: keep those.
    const retry = rejected.filter(({ err }) => !wroteAny || isUnavailable(err));
    if (retry.length > 0) {
      this.failed(retry[0]?.err, retry.length);
      for (const { result } of retry.reverse()) {
        if ('result' in result) this.completions.unshift(result);
        else this.failures.unshift(result);
      }
    }
    for (const { result, err } of rejected) {
      if (wroteAny && !isUnavailable(err)) await this.recordUnstorable(result, err, now);
    }
    return retry.length === 0;
  }

  private async recordUnstorable(result: Completion | Failure, err: unknown, now: number): Promise<void> {
    const { id, seq, owner, attempt } = result;
    const failure: Failure = { id, seq, owner, attempt, error: unstorable(err), outcome: 'failed' };
    this.options.logger.error(
      { err, taskId: id },
      'a task result could not be stored; recording the task failed',
    );
    try {
      await this.options.driver.failTasks({ failures: [failure], now });
      this.emit('written', { completions: [], failures: [failure] });
    } catch (again) {
      // Nothing this process can write for the task: its lease expires and it runs again elsewhere.
      this.options.logger.error({ err: again, taskId: id }, 'dropping a task result that cannot be stored');
    }
  }

  private failed(err: unknown, pending: number): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.failing ??= { since: Date.now(), error };
    this.failing.error = error;
    this.options.logger.error({ err: error, pending }, 'writing task results failed; will retry');
    this.emit('writeFailed', error);
  }
}
