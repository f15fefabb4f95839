/**
 * Tracing: the cost of taskq's OpenTelemetry spans on a drain (docs/tracing.md). The same
 * c50/p100 drain of stored no-op tasks with no SDK (`off`), with an SDK that samples nothing
 * (`unsampled`) and with one that records every span (`recording`, to an exporter that drops
 * them). Modes alternate over rounds, a fresh process and database each, and the median rate of
 * each mode is reported beside `off`'s: the machine is shared, so one run's ratio is the figure.
 */
import { runChildScript } from '../lib/proc.js';
import { freshDb } from '../lib/store.js';
import type { BenchOptions } from '../lib/options.js';
import { TRACING_MODES, type TracingMode } from '../lib/tracing.js';

const ROUNDS = 3;
const CONCURRENCY = 50;
const PREFETCH = 100;

export interface TracingRow {
  mode: TracingMode;
  /** Median tasks/s over the rounds. */
  rate: number;
  /** Median CPU time per task in the drain process (µs). */
  cpuUsPerTask: number;
  rates: number[];
  /** Spans exported in the last round (2 per task when recording: wait and process). */
  spans: number;
  /** rate / the `off` rate. */
  ratio: number;
}

export interface TracingResult {
  n: number;
  concurrency: number;
  prefetch: number;
  rows: TracingRow[];
}

interface DrainChild {
  rate: number;
  cpuUsPerTask: number;
  completedInDb: number;
  spans: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

export async function runTracing(opts: BenchOptions): Promise<TracingResult> {
  const runs = new Map<TracingMode, DrainChild[]>(TRACING_MODES.map((m) => [m, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const tracing of TRACING_MODES) {
      const db = await freshDb(opts.db);
      const result = await runChildScript<DrainChild>(
        'drain.ts',
        { db, n: opts.drainTasks, concurrency: CONCURRENCY, prefetch: PREFETCH, timeoutMs: 120_000, tracing },
        130_000,
      );
      if (result.completedInDb !== opts.drainTasks)
        throw new Error(`tracing ${tracing}: ${result.completedInDb} of ${opts.drainTasks} completed`);
      runs.get(tracing)?.push(result);
    }
  }
  const offRate = median((runs.get('off') ?? []).map((r) => r.rate));
  const rows = TRACING_MODES.map((mode): TracingRow => {
    const results = runs.get(mode) ?? [];
    const rate = median(results.map((r) => r.rate));
    return {
      mode,
      rate,
      cpuUsPerTask: median(results.map((r) => r.cpuUsPerTask)),
      rates: results.map((r) => r.rate),
      spans: results[results.length - 1]?.spans ?? 0,
      ratio: Math.round((rate / offRate) * 1000) / 1000,
    };
  });
  return { n: opts.drainTasks, concurrency: CONCURRENCY, prefetch: PREFETCH, rows };
}
