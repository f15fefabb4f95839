/**
 * Group commit: calls made while a flush is being prepared or is in flight are coalesced into the
 * next single `flush(items)` call, so N concurrent requests cost one transaction (one fsync)
 * instead of N. A flush starts on the next turn of the event loop (or after `delayMs`), or as soon
 * as `maxBatch` items wait. Each caller's promise settles with its own result, or with the error
 * of the whole batch (the batch is one transaction: all or nothing).
 */
export interface BatcherOptions {
  /** Most items in one flush. */
  maxBatch: number;
  /** Wait this long for more items before flushing; 0 means the next event-loop turn. */
  delayMs: number;
  /** Flushes allowed in flight at once (1 for SQLite; more lets PostgreSQL use several connections). */
  maxInFlight: number;
}

interface Pending<I, R> {
  item: I;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

export class Batcher<I, R> {
  private pending: Pending<I, R>[] = [];
  private scheduled = false;
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly flush: (items: I[]) => Promise<R[]>,
    private readonly options: BatcherOptions,
  ) {}

  add(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once nothing is pending or in flight (used by shutdown). */
  async drain(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.run();
    };
    if (this.pending.length >= this.options.maxBatch || this.options.delayMs === 0) setImmediate(run);
    else setTimeout(run, this.options.delayMs);
  }

  private async run(): Promise<void> {
    if (this.pending.length === 0 || this.inFlight >= this.options.maxInFlight) return this.notifyIdle();
    const batch = this.pending.splice(0, this.options.maxBatch);
    this.inFlight++;
    try {
      const results = await this.flush(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(results[i] as R));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.inFlight--;
    }
    if (this.pending.length > 0) this.schedule();
    else this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.pending.length > 0 || this.inFlight > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
