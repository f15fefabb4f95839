/**
 * Batches acks and nacks: results of tasks that finish within `delayMs` of each other are written
 * in one transaction each for completions and failures, so a fast queue pays one commit (one
 * fsync) per batch rather than per task. If the write fails (database unreachable), the batch is
 * kept and retried; meanwhile the tasks stay `running` under their lease, and if the process dies
 * first they are rescued and run again (at-least-once).
 */
import type { Logger } from 'pino';
import type { Completion, Failure, QueueDriver } from '../drivers/driver.js';
import { Signals } from './signals.js';

export interface CompleterOptions {
  driver: QueueDriver;
  logger: Logger;
  /** Collect for this long before writing. */
  delayMs: number;
  maxBatch: number;
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
}

export class Completer extends Signals<CompleterEvents> {
  private completions: Completion[] = [];
  private failures: Failure[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<boolean> | null = null;
  private retryDelayMs = 50;

  constructor(private readonly options: CompleterOptions) {
    super();
  }

  /** Nothing to start: results are written as they come. Here so the pool starts every service alike. */
  start(): void {}

  /** Writes what is pending. */
  async stop(): Promise<void> {
    await this.flush();
  }

  get pending(): number {
    return this.completions.length + this.failures.length;
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
      const pending = completions.length + failures.length;
      this.options.logger.error({ err, pending }, 'writing task results failed; will retry');
      this.completions.unshift(...completions);
      this.failures.unshift(...failures);
      return false;
    } finally {
      if (written.completions.length + written.failures.length > 0) this.emit('written', written);
    }
  }
}
