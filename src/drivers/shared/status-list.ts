/**
 * A status rule of core/task.ts (`RETRYABLE_STATUSES`, ...) as the SQL list both drivers' queries
 * test against, so the rule is written once. Built at module load from the constants, never from
 * input; each value is checked against TASK_STATUSES before it is quoted.
 */
import { TASK_STATUSES, type TaskStatus } from '../../core/task.js';

/** `'failed', 'cancelled'`: the statuses as SQL string literals, for an `IN (...)` list. */
export function statusList(statuses: readonly TaskStatus[]): string {
  if (statuses.length === 0) throw new Error('a status list needs at least one status');
  return statuses
    .map((status) => {
      if (!TASK_STATUSES.includes(status)) throw new Error(`not a task status: ${String(status)}`);
      return `'${status}'`;
    })
    .join(', ');
}
