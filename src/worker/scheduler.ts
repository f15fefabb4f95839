/**
 * Recurring tasks. Each schedule (from the JSON file named by --schedules) is a cron expression
 * in a time zone plus the task to queue. Every process that runs workers also runs the
 * scheduler; a tick is queued under the idempotency key `schedule:<name>:<tick ISO time>`, so
 * however many nodes see the same tick, the database stores exactly one task for it.
 * A process queues the ticks that fall after it started; ticks missed while no node ran are
 * not caught up. A schedule paused in the console (its state is in the database, so every node
 * sees it) queues no ticks until resumed; the ticks it skipped are not caught up either.
 * Ticks and the console's "run now" go through one path (queue/schedules.ts), which also
 * records the schedule's last run.
 *
 * Catch-up and clock policy. A check queues every tick since the previous check while checks
 * come on time. After a gap (more than CATCH_UP_CHECKS check intervals: the process was paused,
 * or the clock jumped forward) the ticks missed in it collapse into one, the latest: a schedule
 * runs once for a gap, never once per missed tick. When the clock goes back, nothing is queued
 * until it passes the last time already checked: no tick is queued twice (and its key would
 * refuse it anyway). The time is the scheduler's `now` (Date.now unless a test injects a clock).
 */
import { readFileSync } from 'node:fs';
import { CronExpressionParser } from 'cron-parser';
import type { Logger } from 'pino';
import { ConfigError } from '../core/errors.js';
import { nextRun, type Schedule } from '../core/schedule.js';
import type { JsonObject } from '../core/task.js';
import type { TaskQueue } from '../queue/queue.js';
import { enqueueScheduleRun } from '../queue/schedules.js';

export type { Schedule };

/** A check that comes later than this many intervals after the last one catches up once. */
const CATCH_UP_CHECKS = 2;

function nextTicks(schedule: Schedule, after: number, until: number): Date[] {
  const expression = CronExpressionParser.parse(schedule.cron, {
    currentDate: new Date(after),
    tz: schedule.timezone,
  });
  const ticks: Date[] = [];
  for (;;) {
    const tick = expression.next().toDate();
    if (tick.getTime() > until) return ticks;
    ticks.push(tick);
  }
}

/** The last tick in (after, until], if any. */
function lastTick(schedule: Schedule, after: number, until: number): Date[] {
  const tick = CronExpressionParser.parse(schedule.cron, {
    currentDate: new Date(until + 1),
    tz: schedule.timezone,
  })
    .prev()
    .toDate();
  return tick.getTime() > after ? [tick] : [];
}

/** Reads and checks a schedules file; any mistake is a ConfigError naming the schedule. */
export function loadSchedules(file: string): Schedule[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--schedules (TASKQ_SCHEDULES): cannot read ${file}: ${(err as Error).message}`);
  }
  const list = Array.isArray(raw) ? raw : (raw as { schedules?: unknown })?.schedules;
  if (!Array.isArray(list)) throw new ConfigError(`--schedules: ${file} must hold a JSON array of schedules`);
  const names = new Set<string>();
  return list.map((item: Record<string, unknown>, i) => {
    const where = `--schedules: ${file}: schedule ${typeof item?.name === 'string' ? `"${item.name}"` : `#${i}`}`;
    if (!item || typeof item !== 'object') throw new ConfigError(`${where} must be an object`);
    const { name, cron, timezone = 'UTC', action, data = {}, priority, max_attempts: maxAttempts } = item;
    if (typeof name !== 'string' || !/^[\w.:-]{1,100}$/.test(name))
      throw new ConfigError(`${where}: name must be 1-100 letters, digits or _ . : -`);
    if (names.has(name)) throw new ConfigError(`${where}: the name is used twice`);
    names.add(name);
    if (typeof action !== 'string' || action === '')
      throw new ConfigError(`${where}: action must be a non-empty string`);
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw new ConfigError(`${where}: data must be a JSON object`);
    if (typeof timezone !== 'string') throw new ConfigError(`${where}: timezone must be a string`);
    const schedule: Schedule = {
      name,
      cron: String(cron),
      timezone,
      action,
      data: data as JsonObject,
      priority: typeof priority === 'number' ? priority : undefined,
      maxAttempts: typeof maxAttempts === 'number' ? maxAttempts : undefined,
    };
    try {
      nextRun(schedule);
    } catch (err) {
      throw new ConfigError(
        `${where}: bad cron "${String(cron)}" or timezone "${timezone}": ${(err as Error).message}`,
      );
    }
    return schedule;
  });
}

export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private checkedUntil: number;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly queue: TaskQueue,
    readonly schedules: readonly Schedule[],
    private readonly logger: Logger,
    private readonly checkMs = 1000,
    private readonly now: () => number = Date.now,
  ) {
    this.checkedUntil = now();
  }

  start(): void {
    if (this.timer || this.schedules.length === 0) return;
    this.checkedUntil = this.now();
    this.timer = setInterval(() => void this.check(), this.checkMs);
    this.timer.unref();
  }

  /** Queues the ticks since the last check, as the policy at the top of this file says. */
  async check(now = this.now()): Promise<void> {
    if (this.checking) return this.checking;
    const from = this.checkedUntil;
    if (now <= from) return; // the clock went back: wait until it passes `from` again
    const ticksOf = now - from > CATCH_UP_CHECKS * this.checkMs ? lastTick : nextTicks;
    this.checking = (async () => {
      const due = this.schedules
        .map((schedule) => ({ schedule, ticks: ticksOf(schedule, from, now) }))
        .filter((d) => d.ticks.length > 0);
      const paused = due.length > 0 ? await this.pausedSchedules() : new Set<string>();
      if (paused === null) return; // tried again at the next check, from the same time
      for (const { schedule, ticks } of due) {
        if (paused.has(schedule.name)) continue;
        for (const tick of ticks) {
          try {
            const at = tick.getTime();
            const { task, inserted } = await enqueueScheduleRun(this.queue, schedule, {
              key: tick.toISOString(),
              at,
            });
            if (inserted)
              this.logger.info({ schedule: schedule.name, tick, taskId: task.id }, 'queued scheduled task');
          } catch (err) {
            this.logger.error({ err, schedule: schedule.name, tick }, 'queuing a scheduled task failed');
          }
        }
      }
      this.checkedUntil = now;
    })();
    await this.checking;
    this.checking = null;
  }

  /**
   * Names of the paused schedules, read only when a tick is due; null when they cannot be read
   * (the check is then tried again rather than queuing a tick a pause may forbid).
   */
  private async pausedSchedules(): Promise<Set<string> | null> {
    try {
      const states = await this.queue.scheduleStates();
      return new Set(states.filter((s) => s.pausedAt !== null).map((s) => s.name));
    } catch (err) {
      this.logger.error({ err }, "reading the schedules' pauses failed");
      return null;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.checking;
  }
}
