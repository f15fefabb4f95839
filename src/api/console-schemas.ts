/**
 * The schemas of the operator's console routes (routes/actions.ts, routes/schedules.ts): one
 * definition validates, serializes, documents (OpenAPI) and types the answers, which the client
 * and the dashboard (JSDoc) import from here.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ACTION_NAME_PATTERN } from '../core/actions.js';
import { ACTION_MAX_LENGTH, CreatedTask, NO_NUL, StatusCounts } from './schemas.js';

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const WindowSchema = Type.Object({
  minutes: Type.Integer({ description: 'whole minutes, the current one included' }),
  completed: Type.Integer(),
  failed: Type.Integer(),
  completed_per_minute: Type.Number(),
  failure_rate: Nullable(
    Type.Number({ description: 'failed / (completed + failed); null if none finished' }),
  ),
});

export const ActionSchema = Type.Object({
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

export const ActionList = Type.Object({
  actions: Type.Array(ActionSchema),
  generated_at: Type.String({ description: 'ISO 8601' }),
});

export const PauseState = Type.Object({
  action: Type.String(),
  paused: Type.Boolean(),
  paused_at: Type.Union([Type.String({ description: 'ISO 8601' }), Type.Null()]),
});

export type PauseStateItem = Static<typeof PauseState>;

export const ActionParams = Type.Object({
  action: Type.String({
    minLength: 1,
    maxLength: ACTION_MAX_LENGTH,
    pattern: ACTION_NAME_PATTERN.source,
    description: 'an action name (letters, digits, _ . : -)',
  }),
});
export type ActionParams = Static<typeof ActionParams>;

const IsoOrNull = Type.Union([Type.String({ description: 'ISO 8601' }), Type.Null()]);

export const ScheduleSchema = Type.Object({
  name: Type.String(),
  cron: Type.String(),
  timezone: Type.String(),
  action: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
  next_run_at: Type.String({ description: 'ISO 8601: the next tick (a paused schedule skips it)' }),
  paused: Type.Boolean(),
  paused_at: IsoOrNull,
  last_run_at: Type.Union([
    Type.String({ description: 'the tick (or run-now) last queued, ISO 8601' }),
    Type.Null(),
  ]),
  last_task_id: Type.Union([Type.String(), Type.Null()]),
});
export type ScheduleItem = Static<typeof ScheduleSchema>;

export const ScheduleList = Type.Object({ schedules: Type.Array(ScheduleSchema) });

export const ScheduleParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) });
export type ScheduleParams = Static<typeof ScheduleParams>;

export const RunHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: NO_NUL,
      description:
        'the same key queues at most one run (a retried request); without it every request queues one',
    }),
  ),
});
export type RunHeaders = Static<typeof RunHeaders>;

export const RunResult = Type.Object({
  schedule: Type.String(),
  task: CreatedTask,
  inserted: Type.Boolean(),
});
export type ScheduleRunItem = Static<typeof RunResult>;

/** GET /audit (routes/audit.ts): operator actions, newest first. */
export const AuditEntrySchema = Type.Object({
  id: Type.String({ description: 'the entry, ascending in time' }),
  at: Type.String({ description: 'ISO 8601, when it was answered' }),
  token: Nullable(
    Type.String({ description: "the token's name; null when the service runs without tokens" }),
  ),
  method: Type.String(),
  route: Type.String({ description: 'the route pattern, e.g. /tasks/:id/retry' }),
  action: Type.String({ description: 'what was done: tasks.retry, actions.pause, bulk.delete, ...' }),
  target: Nullable(Type.String({ description: 'the task id, action, schedule or operation id' })),
  detail: Nullable(
    Type.Record(Type.String(), Type.Unknown(), {
      description: 'what the route adds: a bulk operation has filter, matched and dry_run',
    }),
  ),
  status: Type.Integer({ description: 'the HTTP status answered' }),
});
export type AuditEntryItem = Static<typeof AuditEntrySchema>;

export const AuditList = Type.Object({
  entries: Type.Array(AuditEntrySchema),
  next_cursor: Nullable(Type.String({ description: 'pass as ?cursor= for the next page; null on the last' })),
});
export type AuditListItem = Static<typeof AuditList>;

export const AuditQuery = Type.Object(
  {
    token: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, pattern: NO_NUL, description: "a token's name" }),
    ),
    action: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, pattern: NO_NUL, description: 'e.g. tasks.retry' }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        pattern: NO_NUL,
        description: 'next_cursor of the previous page',
      }),
    ),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;
