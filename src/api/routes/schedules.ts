/**
 * Schedules in the operator's console (docs/operations.md): GET /schedules lists the recurring
 * tasks this service was configured with, when each runs next and last ran, and whether it is
 * paused; POST /schedules/:name/pause, /resume and /run pause it, resume it and queue one run
 * now (through the scheduler's own path, queue/schedules.ts). The state is in the database, so
 * every node and every restart sees it. The three POSTs are operator actions
 * (`config: { scope: 'operate' }`: the token scopes and the audit log key on it).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../../core/errors.js';
import type { Schedule } from '../../core/schedule.js';
import type { TaskQueue } from '../../queue/queue.js';
import {
  enqueueScheduleRun,
  readSchedules,
  scheduleViewOf,
  type ScheduleView,
} from '../../queue/schedules.js';
import {
  RunHeaders,
  RunResult,
  ScheduleList,
  ScheduleParams,
  ScheduleSchema,
  type ScheduleItem,
} from '../console-schemas.js';
import { ErrorSchema } from '../schemas.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function toScheduleView(s: ScheduleView): ScheduleItem {
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    action: s.action,
    data: s.data,
    next_run_at: new Date(s.nextRunAt).toISOString(),
    paused: s.paused,
    paused_at: iso(s.pausedAt),
    last_run_at: iso(s.lastRunAt),
    last_task_id: s.lastTaskId,
  };
}

export function scheduleRoutes(app: FastifyInstance, queue: TaskQueue, schedules: readonly Schedule[]): void {
  const byName = new Map(schedules.map((s) => [s.name, s]));
  const scheduleOf = (name: string): Schedule => {
    const schedule = byName.get(name);
    if (!schedule) throw new QueueError('TQ_ERR_NOT_FOUND', `schedule "${name}" not found`);
    return schedule;
  };

  app.get(
    '/schedules',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'List recurring tasks: next and last run, paused',
        tags: ['operations'],
        response: { 200: ScheduleList },
      },
    },
    async () => ({ schedules: (await readSchedules(queue, schedules)).map(toScheduleView) }),
  );

  const operate = (audit: string, summary: string, description: string) => ({
    config: { scope: 'operate' as const, audit },
    schema: {
      summary,
      description,
      tags: ['operations'],
      params: ScheduleParams,
      response: { 200: ScheduleSchema, 404: ErrorSchema },
    },
  });
  for (const paused of [true, false]) {
    app.post<{ Params: ScheduleParams }>(
      `/schedules/:name/${paused ? 'pause' : 'resume'}`,
      operate(
        paused ? 'schedules.pause' : 'schedules.resume',
        paused ? 'Pause a schedule' : 'Resume a schedule',
        paused
          ? 'Its ticks are not queued on any node until it is resumed (nor caught up after). Persisted; idempotent.'
          : 'Its next tick is queued again; the ticks it skipped are not. Idempotent.',
      ),
      async (request) => {
        const schedule = scheduleOf(request.params.name);
        const state = await queue.setSchedulePaused(schedule.name, paused);
        return toScheduleView(scheduleViewOf(schedule, state, Date.now()));
      },
    );
  }

  app.post<{ Params: ScheduleParams; Headers: RunHeaders }>(
    '/schedules/:name/run',
    {
      config: { scope: 'operate' as const, audit: 'schedules.run' },
      schema: {
        summary: 'Queue one run of a schedule now',
        description:
          "Queues the schedule's task as a tick would (paused or not). With an Idempotency-Key header a repeated request answers 200 with the first run's task.",
        tags: ['operations'],
        params: ScheduleParams,
        headers: RunHeaders,
        response: { 200: RunResult, 202: RunResult, 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const schedule = scheduleOf(request.params.name);
      const key = request.headers['idempotency-key'] ?? randomUUID();
      const { task, inserted } = await enqueueScheduleRun(queue, schedule, {
        key: `run:${key}`,
        at: Date.now(),
      });
      return reply
        .code(inserted ? 202 : 200)
        .send({ schedule: schedule.name, task: { id: task.id, status: task.status }, inserted });
    },
  );
}
