/** GET /schedules: the recurring tasks this service was configured with, and when each runs next. */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { nextRun, type Schedule } from '../../core/schedule.js';

const ScheduleList = Type.Object({
  schedules: Type.Array(
    Type.Object({
      name: Type.String(),
      cron: Type.String(),
      timezone: Type.String(),
      action: Type.String(),
      data: Type.Record(Type.String(), Type.Unknown()),
      next_run_at: Type.String({ description: 'ISO 8601' }),
    }),
  ),
});

export function scheduleRoutes(app: FastifyInstance, schedules: readonly Schedule[]): void {
  app.get(
    '/schedules',
    { schema: { summary: 'List recurring tasks', tags: ['operations'], response: { 200: ScheduleList } } },
    async () => ({
      schedules: schedules.map((s) => ({
        name: s.name,
        cron: s.cron,
        timezone: s.timezone,
        action: s.action,
        data: s.data,
        next_run_at: nextRun(s).toISOString(),
      })),
    }),
  );
}
