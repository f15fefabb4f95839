/**
 * Drain: N stored no-op tasks worked off by one process (a fresh process per run). On a local
 * PostgreSQL, the cluster's CPU per task is read twice: over the drain alone (in the child) and
 * over the child's whole life (here), which covers the same phases as a peer's `process` test:
 * connect and migrate, fill, drain, close.
 */
import { runChildScript } from '../lib/proc.js';
import { measurePgCpu, type PgCpuFigure } from '../lib/pg-cpu.js';
import { freshDb } from '../lib/store.js';
import type { BenchOptions } from '../lib/options.js';

export interface DrainResult {
  n: number;
  concurrency: number;
  prefetch: number;
  ms: number;
  rate: number;
  firstMs: number;
  completedInDb: number;
  maxHeld: number;
  /** Tasks per claim statement and per result batch: what each statement's fixed cost divides by. */
  tasksPerClaim: number;
  tasksPerAckBatch: number;
  peakRssMiB: number;
  /** PostgreSQL cluster CPU from `pool.start()` to the last completion. */
  pgCpuDrain: PgCpuFigure | null;
  /** PostgreSQL cluster CPU over the child's whole life: fill + drain (as the peers measure). */
  pgCpu: PgCpuFigure | null;
}

export async function runDrain(
  opts: BenchOptions,
  concurrency: number,
  prefetch: number,
): Promise<DrainResult> {
  const db = await freshDb(opts.db);
  const { result, pgCpu } = await measurePgCpu(
    db,
    () =>
      runChildScript<Omit<DrainResult, 'pgCpu'>>(
        'drain.ts',
        { db, n: opts.drainTasks, concurrency, prefetch, timeoutMs: 120_000 },
        130_000,
      ),
    (r) => r.completedInDb,
  );
  if (result.completedInDb !== opts.drainTasks)
    throw new Error(`drain: ${result.completedInDb} of ${opts.drainTasks} completed in the database`);
  return { ...result, pgCpu };
}
