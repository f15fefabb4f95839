/**
 * End to end: N tasks POSTed by autocannon to one `--role all` process, timed from the first
 * request until the database shows all N completed.
 */
import { startTaskq } from '../lib/proc.js';
import { waitCompleted, freshDb, open } from '../lib/store.js';
import { now, round } from '../lib/util.js';
import type { BenchOptions } from '../lib/options.js';
import { figures, load, type LoadFigures } from './http.js';

export interface E2eResult {
  n: number;
  concurrency: number;
  prefetch: number;
  ms: number;
  rate: number;
  http: LoadFigures;
  completed: number;
  peakRssMiB: number | null;
}

export async function runE2e(opts: BenchOptions, concurrency = 50, prefetch = 100): Promise<E2eResult> {
  const db = await freshDb(opts.db);
  const reader = await open(db);
  const server = await startTaskq({
    db,
    role: 'all',
    extra: ['--concurrency', String(concurrency), '--prefetch', String(prefetch)],
  });
  try {
    const t0 = now();
    const result = await load(server.url, opts.connections, { amount: opts.e2eTasks });
    const ms = await waitCompleted(reader, opts.e2eTasks, t0);
    return {
      n: opts.e2eTasks,
      concurrency,
      prefetch,
      ms: round(ms),
      rate: round(opts.e2eTasks / (ms / 1000)),
      http: figures(result),
      completed: opts.e2eTasks,
      peakRssMiB: await server.child.peakRss(),
    };
  } finally {
    await server.child.stop();
    await reader.close();
  }
}
