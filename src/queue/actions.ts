/**
 * The actions view of the operator's console (GET /actions, docs/operations.md): every action
 * known here (handlers registered, tasks stored, schedules, paused ones) with its pause, counts,
 * throughput, failure rate, run-time percentiles, queue age and flow-control settings.
 *
 * Every figure comes from something kept incrementally: the stats counters (counts), the
 * per-action minute ring of migration 0011 (finishes, run-time buckets), one index seek per
 * action with queued tasks (queue age) and the small pause table. So the read costs the same
 * with ten tasks or ten million; what grows it is the number of actions.
 */
import {
  ACTION_RING_MINUTES,
  MINUTE_MS,
  percentileOf,
  RUN_BUCKET_COLUMNS,
  type ActionPause,
} from '../core/actions.js';
import type { RateLimit } from '../core/flow.js';
import type { Schedule } from '../core/schedule.js';
import { TASK_STATUSES, zeroCounts, type StatusCounts } from '../core/task.js';
import type { TaskQueue } from './queue.js';

/** The short window of the throughput figures, in minutes (the long one is the whole ring). */
export const SHORT_WINDOW_MINUTES = 5;

/** Finishes over a window of whole minutes, the current minute included. */
export interface WindowFigures {
  minutes: number;
  completed: number;
  failed: number;
  /** Completed per minute over the window. */
  completedPerMinute: number;
  /** failed / (completed + failed); null when nothing finished. */
  failureRate: number | null;
}

export interface ActionView {
  action: string;
  /** A handler of this process runs it (false: known from tasks, schedules or a pause only). */
  registered: boolean;
  paused: boolean;
  /** Epoch ms; null when not paused. */
  pausedAt: number | null;
  counts: StatusCounts;
  total: number;
  last5m: WindowFigures;
  last60m: WindowFigures;
  /** Run time of the attempts that finished in the last hour (bucket upper bounds, ms). */
  runMsP50: number | null;
  runMsP95: number | null;
  oldestQueuedAgeMs: number | null;
  rateLimit: RateLimit | null;
  concurrencyPerKey: number | null;
  /** The handler's own per-process `concurrency`, if any. */
  concurrency: number | null;
  /** Names of the schedules that queue this action. */
  schedules: string[];
}

export interface ActionsView {
  actions: ActionView[];
  generatedAt: number;
}

function windowOf(minutes: number, completed: number, failed: number): WindowFigures {
  const finished = completed + failed;
  return {
    minutes,
    completed,
    failed,
    completedPerMinute: Math.round((completed / minutes) * 100) / 100,
    failureRate: finished === 0 ? null : Math.round((failed / finished) * 10_000) / 10_000,
  };
}

export async function readActions(
  queue: TaskQueue,
  schedules: readonly Schedule[] = [],
  now = Date.now(),
): Promise<ActionsView> {
  const thisMinute = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const since = thisMinute - (ACTION_RING_MINUTES - 1) * MINUTE_MS;
  const shortSince = thisMinute - (SHORT_WINDOW_MINUTES - 1) * MINUTE_MS;
  const [counts, stats, paused] = await Promise.all([
    queue.counts(),
    queue.actionStats(since),
    queue.pausedActions(),
  ]);
  const registered = new Set(queue.registeredActions());
  const limits = new Map(queue.actionLimits().map((l) => [l.action, l]));
  const pauses = new Map<string, ActionPause>(paused.map((p) => [p.action, p]));
  const oldest = new Map(stats.oldestQueued.map((o) => [o.action, o.createdAt]));
  const byAction = new Map<string, StatusCounts>();
  for (const { action, status, count } of counts.byAction) {
    const entry = byAction.get(action) ?? zeroCounts();
    entry[status] += count;
    byAction.set(action, entry);
  }
  const names = new Set<string>([
    ...registered,
    ...byAction.keys(),
    ...schedules.map((s) => s.action),
    ...pauses.keys(),
  ]);
  const actions = [...names].sort().map((action): ActionView => {
    const c = byAction.get(action) ?? zeroCounts();
    const minutes = stats.minutes.filter((m) => m.action === action && m.minute >= since);
    const sum = (rows: typeof minutes, key: 'completed' | 'failed') => rows.reduce((n, m) => n + m[key], 0);
    const recent = minutes.filter((m) => m.minute >= shortSince);
    const buckets = RUN_BUCKET_COLUMNS.map((_, i) => minutes.reduce((n, m) => n + (m.buckets[i] ?? 0), 0));
    const limit = limits.get(action);
    const handler = registered.has(action) ? queue.handlerOf(action) : undefined;
    const createdAt = oldest.get(action);
    return {
      action,
      registered: registered.has(action),
      paused: pauses.has(action),
      pausedAt: pauses.get(action)?.pausedAt ?? null,
      counts: c,
      total: TASK_STATUSES.reduce((n, s) => n + c[s], 0),
      last5m: windowOf(SHORT_WINDOW_MINUTES, sum(recent, 'completed'), sum(recent, 'failed')),
      last60m: windowOf(ACTION_RING_MINUTES, sum(minutes, 'completed'), sum(minutes, 'failed')),
      runMsP50: percentileOf(buckets, 0.5),
      runMsP95: percentileOf(buckets, 0.95),
      oldestQueuedAgeMs: createdAt === undefined ? null : Math.max(0, now - createdAt),
      rateLimit: limit?.rateLimit ?? null,
      concurrencyPerKey: limit?.concurrencyPerKey ?? null,
      concurrency: handler?.concurrency ?? null,
      schedules: schedules.filter((s) => s.action === action).map((s) => s.name),
    };
  });
  return { actions, generatedAt: now };
}
