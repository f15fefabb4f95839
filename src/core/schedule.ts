/** A recurring task as configured (worker/scheduler.ts queues its ticks), and when it runs next. */
import { CronExpressionParser } from 'cron-parser';
import type { JsonObject } from './task.js';

export interface Schedule {
  name: string;
  /** Five fields (minute precision) or six (with seconds first). */
  cron: string;
  /** IANA zone, e.g. Europe/Berlin; default UTC. */
  timezone: string;
  action: string;
  data: JsonObject;
  priority?: number;
  maxAttempts?: number;
}

export function nextRun(schedule: Schedule, now = Date.now()): Date {
  return CronExpressionParser.parse(schedule.cron, { currentDate: new Date(now), tz: schedule.timezone })
    .next()
    .toDate();
}
