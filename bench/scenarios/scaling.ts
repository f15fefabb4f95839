/**
 * Scaling out: 1, 2, 4, ... separate `taskq run --role worker` processes on one database. The
 * workers start on an empty store and are healthy before the clock starts; the clock then covers
 * inserting N tasks (in 1,000-task transactions) and working them all off. Workers in other
 * processes learn of new tasks by polling on SQLite (`--poll-ms 20` here) and by NOTIFY on
 * PostgreSQL.
 *
 * Two cores cannot show a cluster of worker machines, so on a local PostgreSQL each row also
 * reports what such a cluster is bound by: the database server's CPU per completed task, over
 * the clock's phases (fill + drain) and over the workers' whole life (start, fill, drain, stop),
 * the scope a peer's figure has. `scalingChecks` compares the latter across rows and against
 * graphile-worker (batched) in the same run, and the rows' rates with each other.
 */
import { startTaskq, type Child } from '../lib/proc.js';
import { openCheckpointedMeter, pgCpuFigure, type PgCpuFigure } from '../lib/pg-cpu.js';
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
  /** PostgreSQL cluster CPU over the clock: fill + drain. */
  pgCpuClock: PgCpuFigure | null;
  /** PostgreSQL cluster CPU from before the first worker starts until the last one has exited. */
  pgCpu: PgCpuFigure | null;
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
  const meter = await openCheckpointedMeter(db);
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
    const life0 = await meter?.read();
    for (let i = 0; i < workers; i++) children.push((await startTaskq({ db, role: 'worker', extra })).child);
    const clock0 = await meter?.read();
    const t0 = now();
    await fill(driver, opts.drainTasks);
    const ms = await waitCompleted(driver, opts.drainTasks, t0);
    const clock1 = await meter?.read();
    const peakRssMiBEach = await Promise.all(children.map((c) => c.peakRss()));
    await Promise.all(children.map((c) => c.stop()));
    const life1 = await meter?.read();
    const n = opts.drainTasks;
    return {
      workers,
      concurrency,
      prefetch,
      n,
      ms: round(ms),
      rate: round(n / (ms / 1000)),
      peakRssMiBEach,
      pgCpuClock: clock0 && clock1 ? pgCpuFigure(clock0, clock1, n) : null,
      pgCpu: life0 && life1 ? pgCpuFigure(life0, life1, n) : null,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await meter?.close();
    await driver.close();
  }
}

/** Slack for noise in "does not grow": a row may be this much above the one-process row. */
export const GROWTH_TOLERANCE = 0.1;

export interface ScalingCheck {
  name: string;
  pass: boolean | null;
  detail: string;
}

/**
 * The scale-out requirements. On the whole-life server CPU figure: below graphile-worker
 * batched's (same run, same scope) in every row, and not growing with the worker processes.
 * On the rate: not falling as processes are added (issue 9's "must not fall" read as
 * throughput, which applies on either engine). "Growing" and "falling" allow GROWTH_TOLERANCE
 * against the one-process row and against the previous row. pass is null when a figure is
 * missing (not PostgreSQL, or the peer did not run) or there is one row only.
 */
export function scalingChecks(
  rows: readonly ScalingRow[],
  graphile: PgCpuFigure | null | undefined,
): ScalingCheck[] {
  const figures = rows.map((r) => r.pgCpu?.usPerTask);
  const known = figures.every((f): f is number => f !== undefined) && figures.length > 0;
  const list = rows.map((r) => `${r.workers}: ${r.pgCpu?.usPerTask ?? '-'}`).join(', ');
  const vsPeer: ScalingCheck = {
    name: 'PostgreSQL CPU per task below graphile-worker batched (same run)',
    pass: known && graphile ? figures.every((f) => (f ?? Infinity) < graphile.usPerTask) : null,
    detail: `taskq by worker processes ${list} µs; graphile c2 batched ${graphile?.usPerTask ?? '-'} µs`,
  };
  const growth: ScalingCheck = {
    name: `PostgreSQL CPU per task does not grow with worker processes (tolerance ${GROWTH_TOLERANCE * 100} %)`,
    pass: steadyAcrossRows(figures, 1),
    detail: `by worker processes ${list} µs`,
  };
  const noFall: ScalingCheck = {
    name: `tasks/s does not fall as worker processes are added (tolerance ${GROWTH_TOLERANCE * 100} %)`,
    pass: steadyAcrossRows(
      rows.map((r) => r.rate),
      -1,
    ),
    detail: `by worker processes ${rows.map((r) => `${r.workers}: ${Math.round(r.rate)}`).join(', ')} tasks/s`,
  };
  return [vsPeer, growth, noFall];
}

/**
 * Whether no row is worse than the first row, or than the row before it, by more than
 * GROWTH_TOLERANCE. `worse` says which way is worse: 1 when higher is, -1 when lower is. null
 * with fewer than two rows or a figure missing.
 */
function steadyAcrossRows(values: readonly (number | undefined)[], worse: 1 | -1): boolean | null {
  if (values.length < 2 || !values.every((v): v is number => v !== undefined)) return null;
  const first = values[0] as number;
  const within = (value: number, reference: number) =>
    worse * value <= worse * reference * (1 + worse * GROWTH_TOLERANCE);
  return values.every((v, i) => within(v, first) && (i === 0 || within(v, values[i - 1] as number)));
}
