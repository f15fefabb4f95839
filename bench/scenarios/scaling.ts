/**
 * Scaling out: 1, 2, 4, ... separate `taskq run --role worker` processes on one database. The
 * workers start on an empty store and are healthy before the clock starts; the clock then covers
 * inserting N tasks (in 1,000-task transactions) and working them all off. Workers in other
 * processes learn of new tasks by polling on SQLite (`--poll-ms 20` here) and by NOTIFY on
 * PostgreSQL.
 */
import { startTaskq, type Child } from '../lib/proc.js';
import { waitCompleted, fill, freshDb, open } from '../lib/store.js';
import { now, round } from '../lib/util.js';
import type { BenchOptions } from '../lib/options.js';

export interface ScalingRow {
  workers: number;
  concurrency: number;
  prefetch: number;
  n: number;
  ms: number;
  rate: number;
  peakRssMiBEach: (number | null)[];
}

export const POLL_MS = 20;

export function workerCounts(max: number): number[] {
  const counts: number[] = [];
  for (let n = 1; n <= max; n *= 2) counts.push(n);
  if (counts[counts.length - 1] !== max) counts.push(max);
  return counts;
}

export async function runScalingRow(
  opts: BenchOptions,
  workers: number,
  concurrency = 2,
  prefetch = 5,
): Promise<ScalingRow> {
  const db = await freshDb(opts.db);
  const driver = await open(db);
  const children: Child[] = [];
  try {
    const extra = [
      '--concurrency',
      String(concurrency),
      '--prefetch',
      String(prefetch),
      '--poll-ms',
      String(POLL_MS),
    ];
    for (let i = 0; i < workers; i++) children.push((await startTaskq({ db, role: 'worker', extra })).child);
    const t0 = now();
    await fill(driver, opts.drainTasks);
    const ms = await waitCompleted(driver, opts.drainTasks, t0);
    return {
      workers,
      concurrency,
      prefetch,
      n: opts.drainTasks,
      ms: round(ms),
      rate: round(opts.drainTasks / (ms / 1000)),
      peakRssMiBEach: await Promise.all(children.map((c) => c.peakRss())),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await driver.close();
  }
}
