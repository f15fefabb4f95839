/** What a worker pool's completer committed, as tests read it. */
import type { Written } from '../../src/worker/completer.js';
import type { WorkerPool } from '../../src/worker/worker-pool.js';
import { watch, type Watch } from './signals.js';

export type ResultKind = 'completed' | 'retry' | 'failed' | 'cancelled';
export interface WrittenResult {
  id: string;
  attempt: number;
  kind: ResultKind;
  error?: string;
  retryAt?: number;
}

/** What a written batch says of each task, in one list. */
export function resultsOf({ completions, failures }: Written): WrittenResult[] {
  return [
    ...completions.map((c) => ({ id: c.id, attempt: c.attempt, kind: 'completed' as const })),
    ...failures.map((f) => ({
      id: f.id,
      attempt: f.attempt,
      kind: f.outcome,
      error: f.error,
      retryAt: f.retryAt,
    })),
  ];
}

/** The results a pool's completer commits, from now on. */
export class ResultLog {
  private readonly batches: Watch<[Written]>;

  constructor(pool: WorkerPool) {
    this.batches = watch(pool.completer, 'written');
  }

  get all(): WrittenResult[] {
    return this.batches.seen.flatMap(([w]) => resultsOf(w));
  }

  /**
   * The first committed result of task `id` of that kind (of that attempt, if given), written
   * already or still to come.
   */
  async of(id: string, kind: ResultKind, attempt?: number, timeoutMs?: number): Promise<WrittenResult> {
    const wanted = (r: WrittenResult) =>
      r.id === id && r.kind === kind && (attempt === undefined || r.attempt === attempt);
    const [batch] = await this.batches.until((w) => resultsOf(w).some(wanted), timeoutMs);
    return resultsOf(batch).find(wanted) as WrittenResult;
  }

  /** Resolves once `n` results in all have been committed. */
  async count(n: number, timeoutMs?: number): Promise<void> {
    await this.batches.until(() => this.all.length >= n, timeoutMs);
  }
}
