/**
 * Memory (opt-in: `--memory` or `--only memory`): does a long-running node hold steady?
 *
 * - worker node: `taskq run --role worker --concurrency 50 --prefetch 100` (the built service, as
 *   deployed) draining `memoryTasks` no-op tasks (1,000,000; --quick 100,000) filled beforehand
 *   through the driver in 10,000-task transactions (untimed, not sampled), sampled from its start
 *   until the database shows every task completed.
 * - api node: `taskq run --role api` under autocannon POSTs (50 connections) for
 *   `memoryHttpSeconds` (60 s; --quick 10 s).
 *
 * Each is sampled from this process every second (--quick: every 250 ms): VmRSS of
 * /proc/<pid>/status, over the drain or over the load. Requirements: peak
 * under 150 MiB, and the last quarter's mean within 10 % of the first quarter's.
 */
import { startTaskq } from '../lib/proc.js';
import { analyzeSchema, fill, freshDb, open, totalTasks, waitCompleted } from '../lib/store.js';
import { now, round, sampleRss } from '../lib/util.js';
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

async function workerNode(opts: BenchOptions): Promise<NonNullable<MemoryResult['worker']>> {
  const db = await freshDb(opts.db);
  const [concurrency, prefetch] = [50, 100];
  const driver = await open(db);
  try {
    await fill(driver, opts.memoryTasks, 10_000);
    await analyzeSchema(db);
    // The node a user runs: `taskq run --role worker`, from the build, not the bench's tsx loader.
    const t0 = now();
    const node = await startTaskq({
      db,
      role: 'worker',
      extra: ['--concurrency', String(concurrency), '--prefetch', String(prefetch)],
    });
    try {
      const sampler = sampleRss(node.child.pid, () => true, sampleMs(opts));
      const ms = await waitCompleted(driver, opts.memoryTasks, t0, 25 * 60_000);
      const series = sampler.stop();
      return {
        ...summarizeRss(series),
        n: opts.memoryTasks,
        concurrency,
        prefetch,
        drainMs: round(ms),
        rate: round(opts.memoryTasks / (ms / 1000)),
      };
    } finally {
      await node.child.stop();
    }
  } finally {
    await driver.close();
  }
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
