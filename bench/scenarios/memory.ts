/**
 * Memory (opt-in: `--memory` or `--only memory`): does a long-running node hold steady?
 *
 * - worker node: bench/children/drain.ts, one WorkerPool at concurrency 50 / prefetch 100,
 *   draining `memoryTasks` no-op tasks (1,000,000; --quick 100,000) filled beforehand through the
 *   driver in 10,000-task transactions (untimed, not sampled).
 * - api node: `taskq run --role api` under autocannon POSTs (50 connections) for
 *   `memoryHttpSeconds` (60 s; --quick 10 s).
 *
 * Each is sampled from this process every second (--quick: every 250 ms): VmRSS of /proc/<pid>/status, over the drain
 * alone (between the child's DRAINING and DRAINED lines) or over the load. Requirements: peak
 * under 150 MiB, and the last quarter's mean within 10 % of the first quarter's.
 */
import { startTaskq } from '../lib/proc.js';
import { runChildScript } from '../lib/proc.js';
import { freshDb, open, totalTasks } from '../lib/store.js';
import { round, sampleRss } from '../lib/util.js';
import type { BenchOptions } from '../lib/options.js';
import { figures, load, type LoadFigures } from './http.js';

export const PEAK_LIMIT_MIB = 150;
/** RSS sampling interval: every second; every 250 ms under --quick (a 100,000-task SQLite drain lasts ~3 s). */
const sampleMs = (opts: BenchOptions): number => (opts.quick ? 250 : 1000);
export const DRIFT_LIMIT = 0.1;

export interface RssSummary {
  samples: number;
  peakMiB: number;
  firstQuarterMiB: number;
  lastQuarterMiB: number;
  /** (last quarter - first quarter) / first quarter. */
  drift: number;
  peakOk: boolean;
  driftOk: boolean;
  /** Every sample (MiB), one a second (--quick: one every 250 ms). */
  series: number[];
}

export function summarizeRss(series: number[]): RssSummary {
  if (series.length < 4) throw new Error(`only ${series.length} RSS samples: the phase was too short`);
  const quarter = Math.floor(series.length / 4);
  const mean = (xs: number[]): number => round(xs.reduce((a, b) => a + b, 0) / xs.length);
  const firstQuarterMiB = mean(series.slice(0, quarter));
  const lastQuarterMiB = mean(series.slice(-quarter));
  const drift = round((lastQuarterMiB - firstQuarterMiB) / firstQuarterMiB, 3);
  const peakMiB = Math.max(...series);
  return {
    samples: series.length,
    peakMiB,
    firstQuarterMiB,
    lastQuarterMiB,
    drift,
    peakOk: peakMiB < PEAK_LIMIT_MIB,
    driftOk: Math.abs(drift) <= DRIFT_LIMIT,
    series,
  };
}

export interface MemoryResult {
  source: string;
  worker?: RssSummary & { n: number; concurrency: number; prefetch: number; drainMs: number; rate: number };
  api?: RssSummary & { load: LoadFigures; tasksStored: number };
  errors: string[];
}

interface DrainChildResult {
  n: number;
  ms: number;
  rate: number;
  completedInDb: number;
}

async function workerNode(opts: BenchOptions): Promise<NonNullable<MemoryResult['worker']>> {
  const db = await freshDb(opts.db);
  const [concurrency, prefetch] = [50, 100];
  let sampler: { stop(): number[] } | undefined;
  const result = await runChildScript<DrainChildResult>(
    'drain.ts',
    { db, n: opts.memoryTasks, concurrency, prefetch, fillBatch: 10_000, timeoutMs: 25 * 60_000 },
    26 * 60_000,
    (child) => {
      const draining = (): boolean =>
        /^DRAINING$/m.test(child.output()) && !/^DRAINED$/m.test(child.output());
      sampler = sampleRss(child.pid, draining, sampleMs(opts));
    },
  );
  const series = sampler?.stop() ?? [];
  if (result.completedInDb !== opts.memoryTasks)
    throw new Error(`memory: ${result.completedInDb} of ${opts.memoryTasks} completed in the database`);
  return {
    ...summarizeRss(series),
    n: result.n,
    concurrency,
    prefetch,
    drainMs: result.ms,
    rate: result.rate,
  };
}

async function apiNode(opts: BenchOptions): Promise<NonNullable<MemoryResult['api']>> {
  const db = await freshDb(opts.db);
  const reader = await open(db);
  const server = await startTaskq({ db, role: 'api' });
  try {
    const sampler = sampleRss(server.child.pid, () => true, sampleMs(opts));
    const result = await load(server.url, opts.connections, { duration: opts.memoryHttpSeconds });
    const series = sampler.stop();
    return { ...summarizeRss(series), load: figures(result), tasksStored: await totalTasks(reader) };
  } finally {
    await server.child.stop();
    await reader.close();
  }
}

export async function runMemory(opts: BenchOptions): Promise<MemoryResult> {
  const out: MemoryResult = {
    source: `VmRSS of /proc/<pid>/status, read by the bench process every ${sampleMs(opts)} ms`,
    errors: [],
  };
  const attempt = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    process.stderr.write(`  memory: ${name} ...\n`);
    try {
      return await fn();
    } catch (err) {
      out.errors.push(`${name}: ${(err as Error).message}`);
      return undefined;
    }
  };
  out.worker = await attempt(`worker node, ${opts.memoryTasks.toLocaleString('en-US')} tasks`, () =>
    workerNode(opts),
  );
  out.api = await attempt(`api node, ${opts.memoryHttpSeconds} s of POSTs`, () => apiNode(opts));
  return out;
}

/** PASS/FAIL lines of the memory requirements. */
export function memoryVerdicts(m: MemoryResult): string[] {
  const lines: string[] = [];
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  for (const [name, s] of [
    ['worker node', m.worker],
    ['api node', m.api],
  ] as const) {
    if (!s) continue;
    lines.push(`${verdict(s.peakOk)}: ${name} peak RSS ${s.peakMiB} MiB < ${PEAK_LIMIT_MIB} MiB`);
    lines.push(
      `${verdict(s.driftOk)}: ${name} RSS last quarter ${s.lastQuarterMiB} MiB within ${DRIFT_LIMIT * 100} % of first quarter ${s.firstQuarterMiB} MiB (${round(s.drift * 100)} %)`,
    );
  }
  return lines;
}
