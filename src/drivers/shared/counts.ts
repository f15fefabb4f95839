/**
 * The stats counters as both drivers store them (docs/stats.md): one row per action with a column
 * per status, kept by triggers. This turns them into `TaskCounts`, in the order the old
 * GROUP BY action, status gave: actions as the database sorted them, statuses alphabetically,
 * zero counts left out.
 */
import { RUN_BUCKET_COLUMNS, type ActionMinute, type ActionPause } from '../../core/actions.js';
import { TASK_STATUSES, zeroCounts, type TaskStatus } from '../../core/task.js';
import type { ScheduleState, TaskCounts } from '../driver.js';

export type CounterRow = { action: string } & Record<TaskStatus, number>;

const BY_NAME: readonly TaskStatus[] = [...TASK_STATUSES].sort();

export function countsFromRows(rows: readonly CounterRow[], oldestQueuedAt: number | null): TaskCounts {
  const byStatus = zeroCounts();
  const byAction: TaskCounts['byAction'] = [];
  for (const row of rows) {
    for (const status of BY_NAME) {
      const count = Number(row[status]);
      if (count === 0) continue;
      byStatus[status] += count;
      byAction.push({ action: row.action, status, count });
    }
  }
  return { byStatus, byAction, oldestQueuedAt };
}

/** A row of the per-action ring (migration 0011), as both drivers read it (PostgreSQL summed over shards). */
export type ActionMinuteRow = { action: string; minute: number; completed: number; failed: number } & Record<
  string,
  number | string
>;

export function actionMinuteOf(row: ActionMinuteRow): ActionMinute {
  return {
    action: row.action,
    minute: Number(row.minute),
    completed: Number(row.completed),
    failed: Number(row.failed),
    buckets: RUN_BUCKET_COLUMNS.map((c) => Number(row[c] ?? 0)),
  };
}

export interface PauseRow {
  action: string;
  paused_at: number;
}
export const pauseOf = (row: PauseRow): ActionPause => ({
  action: row.action,
  pausedAt: Number(row.paused_at),
});

export interface ScheduleRow {
  name: string;
  paused_at: number | null;
  last_run_at: number | null;
  last_task_id: string | null;
}
const numberOrNull = (v: number | null) => (v === null ? null : Number(v));
export const scheduleStateOf = (row: ScheduleRow): ScheduleState => ({
  name: row.name,
  pausedAt: numberOrNull(row.paused_at),
  lastRunAt: numberOrNull(row.last_run_at),
  lastTaskId: row.last_task_id,
});
