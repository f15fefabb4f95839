/**
 * The actions of the operator's console (docs/operations.md): GET /actions lists every action
 * with its pause, counts, throughput, failure rate, run-time percentiles, queue age and
 * flow-control settings (queue/actions.ts says where each comes from); POST
 * /actions/:action/pause and /resume stop and restart claims of an action on every node.
 * Pausing and resuming are operator actions: their routes say `config: { scope: 'operate' }`,
 * which the token scopes and the audit log key on.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ACTION_NAME_PATTERN } from '../../core/actions.js';
import type { Schedule } from '../../core/schedule.js';
import { readActions, type ActionView, type WindowFigures } from '../../queue/actions.js';
import type { TaskQueue } from '../../queue/queue.js';
import { ACTION_MAX_LENGTH, ErrorSchema, StatusCounts } from '../schemas.js';

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const WindowSchema = Type.Object({
  minutes: Type.Integer({ description: 'whole minutes, the current one included' }),
  completed: Type.Integer(),
  failed: Type.Integer(),
  completed_per_minute: Type.Number(),
  failure_rate: Nullable(
    Type.Number({ description: 'failed / (completed + failed); null if none finished' }),
  ),
});

const ActionSchema = Type.Object({
  action: Type.String(),
  registered: Type.Boolean({ description: 'a handler of this node runs it' }),
  paused: Type.Boolean(),
  paused_at: Type.Union([Type.String({ description: 'ISO 8601' }), Type.Null()]),
  counts: StatusCounts,
  total: Type.Integer(),
  last_5m: WindowSchema,
  last_60m: WindowSchema,
  run_ms_p50: Nullable(
    Type.Number({ description: 'run time of the last hour, to its bucket (upper bound); null if none' }),
  ),
  run_ms_p95: Nullable(Type.Number()),
  oldest_queued_age_ms: Nullable(
    Type.Integer({ description: 'age of its oldest queued task; null if none' }),
  ),
  rate_limit: Type.Union([Type.Object({ per_second: Type.Number(), burst: Type.Integer() }), Type.Null()]),
  concurrency_per_key: Nullable(Type.Integer()),
  concurrency: Nullable(Type.Integer({ description: "the handler's own per-process cap" })),
  schedules: Type.Array(Type.String(), { description: 'schedules that queue it' }),
});
export type ActionItem = Static<typeof ActionSchema>;

const ActionList = Type.Object({
  actions: Type.Array(ActionSchema),
  generated_at: Type.String({ description: 'ISO 8601' }),
});

const PauseState = Type.Object({
  action: Type.String(),
  paused: Type.Boolean(),
  paused_at: Type.Union([Type.String({ description: 'ISO 8601' }), Type.Null()]),
});

export type PauseStateItem = Static<typeof PauseState>;

const ActionParams = Type.Object({
  action: Type.String({
    minLength: 1,
    maxLength: ACTION_MAX_LENGTH,
    pattern: ACTION_NAME_PATTERN.source,
    description: 'an action name (letters, digits, _ . : -)',
  }),
});
type ActionParams = Static<typeof ActionParams>;

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

  const pauseRoute = (summary: string, description: string) => ({
    config: { scope: 'operate' as const },
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
      'Resume a paused action',
      'Workers on every node are woken to claim its queued tasks. Resuming an action that is not paused changes nothing.',
    ),
    async (request) => {
      await queue.resumeAction(request.params.action);
      return { action: request.params.action, paused: false, paused_at: null };
    },
  );
}
