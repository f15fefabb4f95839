/**
 * Per-action figures for the operator's console (GET /actions, docs/operations.md): what both
 * drivers keep incrementally and what is derived from it here.
 *
 * - Finishes per action and minute: a ring of ACTION_RING_MINUTES minutes per action (migration
 *   0011), updated by the same statements (PostgreSQL) or triggers (SQLite) that keep the stats
 *   counters, so reading it costs the same at any table size.
 * - Run time (processed_at - started_at of a finished attempt that started) is counted in
 *   RUN_MS_BUCKETS, per minute of that ring; p50 and p95 are read from the buckets (the upper
 *   bound of the bucket holding the percentile), so they are exact to a bucket, never a scan.
 */

/** Minutes kept per action: enough for the 5- and 60-minute figures. */
export const ACTION_RING_MINUTES = 60;
export const MINUTE_MS = 60_000;

/**
 * Upper bounds (ms, inclusive) of the run-time buckets; one more bucket holds everything slower.
 * Both drivers derive their columns (`h0` .. `h15`) from this list.
 */
export const RUN_MS_BUCKETS: readonly number[] = [
  5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 1_800_000,
];
/** Column names of the buckets, the last one unbounded. */
export const RUN_BUCKET_COLUMNS: readonly string[] = [...RUN_MS_BUCKETS, Infinity].map((_, i) => `h${i}`);

/** Action names as the handlers folder and the API accept them. */
export const ACTION_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** One minute of one action's finishes, as a driver reads its ring. */
export interface ActionMinute {
  action: string;
  /** Start of the minute, epoch ms. */
  minute: number;
  completed: number;
  failed: number;
  /** Finishes per run-time bucket, RUN_BUCKET_COLUMNS order. */
  buckets: number[];
}

/** A paused action, cluster-wide (taskq_paused_actions). */
export interface ActionPause {
  action: string;
  /** Epoch ms. */
  pausedAt: number;
}

/**
 * The run time below which `q` (0..1) of the counted finishes fall, as the upper bound of its
 * bucket; the open last bucket answers its lower bound. Null when nothing was counted.
 */
export function percentileOf(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((n, b) => n + b, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i] ?? 0;
    if (seen >= rank) return RUN_MS_BUCKETS[i] ?? (RUN_MS_BUCKETS[RUN_MS_BUCKETS.length - 1] as number);
  }
  return RUN_MS_BUCKETS[RUN_MS_BUCKETS.length - 1] as number;
}

/** The index of the bucket a run time falls in (the drivers do the same in SQL). */
export function bucketOf(runMs: number): number {
  const i = RUN_MS_BUCKETS.findIndex((bound) => runMs <= bound);
  return i === -1 ? RUN_MS_BUCKETS.length : i;
}
