/**
 * Schedules in the operator's console (docs/operations.md): the one path a schedule's task is
 * queued by, for the scheduler's ticks (worker/scheduler.ts) and for "run now" alike, and the
 * schedules as the console shows them, with their pause and last run from the database
 * (migration 0011), so every node and every restart sees the same.
 */
import { nextRun, type Schedule } from '../core/schedule.js';
import type { EnqueueResult, ScheduleState, TaskQueue } from './queue.js';

/** How long a run's key deduplicates: far longer than any clock skew between nodes. */
export const SCHEDULE_KEY_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * Queues one run of `schedule` under the idempotency key `schedule:<name>:<key>` (a tick's ISO
 * time, or `run:<request key>` for a run-now), so a key queues at most one task however many
 * nodes or retried requests ask; a new task is recorded as the schedule's last run at `at`.
 */
export async function enqueueScheduleRun(
  queue: TaskQueue,
  schedule: Schedule,
  run: { key: string; at: number },
): Promise<EnqueueResult> {
  const result = await queue.enqueue({
    action: schedule.action,
    data: schedule.data,
    priority: schedule.priority,
    maxAttempts: schedule.maxAttempts,
    uniqueKey: `schedule:${schedule.name}:${run.key}`,
    uniqueForMs: SCHEDULE_KEY_WINDOW_MS,
  });
  if (result.inserted) await queue.recordScheduleRun(schedule.name, run.at, result.task.id);
  return result;
}

/** A configured schedule with its stored state. Times are epoch ms. */
export interface ScheduleView extends Schedule {
  nextRunAt: number;
  paused: boolean;
  pausedAt: number | null;
  lastRunAt: number | null;
  lastTaskId: string | null;
}

export function scheduleViewOf(
  schedule: Schedule,
  state: ScheduleState | undefined,
  now: number,
): ScheduleView {
  return {
    ...schedule,
    nextRunAt: nextRun(schedule, now).getTime(),
    paused: (state?.pausedAt ?? null) !== null,
    pausedAt: state?.pausedAt ?? null,
    lastRunAt: state?.lastRunAt ?? null,
    lastTaskId: state?.lastTaskId ?? null,
  };
}

export async function readSchedules(
  queue: TaskQueue,
  schedules: readonly Schedule[],
  now = Date.now(),
): Promise<ScheduleView[]> {
  if (schedules.length === 0) return [];
  const states = new Map((await queue.scheduleStates()).map((s) => [s.name, s]));
  return schedules.map((s) => scheduleViewOf(s, states.get(s.name), now));
}
