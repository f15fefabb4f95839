/**
 * The actions of the operator's console (docs/operations.md): GET /actions lists every action
 * with its pause, counts, throughput, failure rate, run-time percentiles, queue age and
 * flow-control settings (queue/actions.ts says where each comes from); POST
 * /actions/:action/pause and /resume stop and restart claims of an action on every node.
 * Pausing and resuming are operator actions: their routes say `config: { scope: 'operate',
 * audit }`, which the token scopes (api/auth.ts) and the audit log (routes/audit.ts) key on.
 */
import type { FastifyInstance } from 'fastify';
import type { Schedule } from '../../core/schedule.js';
import { readActions, type ActionView, type WindowFigures } from '../../queue/actions.js';
import type { TaskQueue } from '../../queue/queue.js';
import { ActionList, ActionParams, PauseState, type ActionItem } from '../console-schemas.js';
import { ErrorSchema } from '../schemas.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const windowView = (w: WindowFigures) => ({
  minutes: w.minutes,
  completed: w.completed,
  failed: w.failed,
  completed_per_minute: w.completedPerMinute,
  failure_rate: w.failureRate,
});

export function toActionView(a: ActionView): ActionItem {
  return {
    action: a.action,
    registered: a.registered,
    paused: a.paused,
    paused_at: iso(a.pausedAt),
    counts: a.counts,
    total: a.total,
    last_5m: windowView(a.last5m),
    last_60m: windowView(a.last60m),
    run_ms_p50: a.runMsP50,
    run_ms_p95: a.runMsP95,
    oldest_queued_age_ms: a.oldestQueuedAgeMs,
    rate_limit: a.rateLimit && { per_second: a.rateLimit.perSecond, burst: a.rateLimit.burst },
    concurrency_per_key: a.concurrencyPerKey,
    concurrency: a.concurrency,
    schedules: a.schedules,
  };
}

export function actionRoutes(app: FastifyInstance, queue: TaskQueue, schedules: readonly Schedule[]): void {
  app.get(
    '/actions',
    {
      config: { scope: 'read' },
      schema: {
        summary:
          'Every action: paused, counts, throughput, failure rate, run time p50/p95, queue age, flow-control settings',
        tags: ['operations'],
        response: { 200: ActionList },
      },
    },
    async () => {
      const view = await readActions(queue, schedules);
      return {
        actions: view.actions.map(toActionView),
        generated_at: new Date(view.generatedAt).toISOString(),
      };
    },
  );

  const pauseRoute = (audit: string, summary: string, description: string) => ({
    config: { scope: 'operate' as const, audit },
    schema: {
      summary,
      description,
      tags: ['operations'],
      params: ActionParams,
      response: { 200: PauseState, 400: ErrorSchema },
    },
  });

  app.post<{ Params: ActionParams }>(
    '/actions/:action/pause',
    pauseRoute(
      'actions.pause',
      'Pause an action on every node',
      'From this answer on no node claims its tasks: queued ones wait, running ones finish. Persisted; pausing again keeps the first pause.',
    ),
    async (request) => {
      const pause = await queue.pauseAction(request.params.action);
      return { action: pause.action, paused: true, paused_at: iso(pause.pausedAt) };
    },
  );

  app.post<{ Params: ActionParams }>(
    '/actions/:action/resume',
    pauseRoute(
      'actions.resume',
      'Resume a paused action',
      'Workers on every node are woken to claim its queued tasks. Resuming an action that is not paused changes nothing.',
    ),
    async (request) => {
      await queue.resumeAction(request.params.action);
      return { action: request.params.action, paused: false, paused_at: null };
    },
  );
}
