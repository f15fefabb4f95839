/** Drain: N stored no-op tasks worked off by one process (a fresh process per run). */
import { runChildScript } from '../lib/proc.js';
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
  peakRssMiB: number;
}

export async function runDrain(
  opts: BenchOptions,
  concurrency: number,
  prefetch: number,
): Promise<DrainResult> {
  const db = await freshDb(opts.db);
  const result = await runChildScript<DrainResult>(
    'drain.ts',
    { db, n: opts.drainTasks, concurrency, prefetch, timeoutMs: 120_000 },
    130_000,
  );
  if (result.completedInDb !== opts.drainTasks)
    throw new Error(`drain: ${result.completedInDb} of ${opts.drainTasks} completed in the database`);
  return result;
}
