/**
 * Seqs for new tasks, taken from the identity's sequence ahead of time. An insert needs its seqs
 * before it is sent (each task's id encodes its seq: task-ids.ts); fetching them per batch would
 * add a round trip to every POST. So one fetch takes a batch's seqs plus `spare` more, and
 * inserts use the spare ones while they are fresh.
 *
 * Spare seqs expire after `maxAgeMs`, so a task's seq is at most that much older than its insert:
 * across processes, seq order (the newest-first order of listings) follows insertion order to
 * within that time. Expired or unused seqs are simply skipped: sequences leave gaps anyway.
 */
export interface SeqReserveOptions {
  /** Fetches `count` new seqs, ascending. */
  allocate: (count: number) => Promise<number[]>;
  spare: number;
  maxAgeMs: number;
  now?: () => number;
}

export class SeqReserve {
  private seqs: number[] = [];
  private fetchedAt = 0;
  private fetching: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: SeqReserveOptions) {
    this.now = options.now ?? Date.now;
  }

  /** `count` unused seqs, ascending. */
  async take(count: number): Promise<number[]> {
    for (;;) {
      if (this.seqs.length >= count && this.now() - this.fetchedAt < this.options.maxAgeMs)
        return this.seqs.splice(0, count);
      this.fetching ??= this.options
        .allocate(count + this.options.spare)
        .then((seqs) => {
          this.seqs = seqs;
          this.fetchedAt = this.now();
        })
        .finally(() => (this.fetching = null));
      await this.fetching;
    }
  }
}
