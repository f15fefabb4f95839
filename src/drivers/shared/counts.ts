/**
 * The stats counters as both drivers store them (docs/stats.md): one row per action with a column
 * per status, kept by triggers. This turns them into `TaskCounts`, in the order the old
 * GROUP BY action, status gave: actions as the database sorted them, statuses alphabetically,
 * zero counts left out.
 */
import { TASK_STATUSES, zeroCounts, type TaskStatus } from '../../core/task.js';
import type { TaskCounts } from '../driver.js';

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
