/**
 * The HTTP API's schemas: one definition serves request validation, the TypeScript types of the
 * handlers, response serialization and the OpenAPI document.
 */
import { Type, type Static, type StringOptions, type TSchema } from '@sinclair/typebox';
import {
  DEPENDENCY_FAILURE_POLICIES,
  TASK_STATUSES,
  type DependencyFailurePolicy,
  type JsonValue,
} from '../core/task.js';
import { DEPENDS_ON_MAX } from '../queue/queue.js';

export const ACTION_MAX_LENGTH = 128;
export const LIST_LIMIT_DEFAULT = 100;
export const LIST_LIMIT_MAX = 1000;
export const CONCURRENCY_KEY_MAX_LENGTH = 255;

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/**
 * Refuses NUL characters. PostgreSQL text cannot hold them (it answers an error, which failed
 * the request with a 500 and, for inserts, every other task of the same insert batch), while
 * SQLite would store them: refusing them here keeps both drivers alike.
 */
export const NO_NUL = '^[^\\u0000]*$';
/** A string the database stores or compares as text. */
const Text = (options: StringOptions = {}) => Type.String({ ...options, pattern: NO_NUL });
/** Any JSON value (data, result); documented as `{}`, as Type.Unknown() would be. */
const JsonAny = Type.Unsafe<JsonValue>({});

export const TaskStatusSchema = Type.Unsafe<(typeof TASK_STATUSES)[number]>({
  type: 'string',
  enum: [...TASK_STATUSES],
});

export const ErrorSchema = Type.Object(
  { error: Type.String({ description: 'what is wrong, for a person' }), code: Type.Optional(Type.String()) },
  { $id: 'Error', description: 'Every error response has this shape' },
);

export const CreateTaskBody = Type.Object(
  {
    action: Text({ minLength: 1, maxLength: ACTION_MAX_LENGTH, description: 'the handler to run' }),
    data: Type.Optional(
      Type.Record(Type.String(), JsonAny, { description: 'a JSON object given to the handler; default {}' }),
    ),
    max_attempts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, description: 'runs before the task fails; default 3' }),
    ),
    priority: Type.Optional(
      Type.Integer({ minimum: -100, maximum: 100, description: 'higher runs first; default 0' }),
    ),
    run_at: Type.Optional(
      Type.String({ maxLength: 64, description: 'ISO 8601 time before which the task is not run' }),
    ),
    delay_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 31_536_000_000,
        description: 'run no sooner than this many ms from now',
      }),
    ),
    unique_key: Type.Optional(
      Text({
        minLength: 1,
        maxLength: 255,
        description: 'idempotency key; the Idempotency-Key header does the same',
      }),
    ),
    concurrency_key: Type.Optional(
      Text({
        minLength: 1,
        maxLength: CONCURRENCY_KEY_MAX_LENGTH,
        description:
          "groups tasks (say a tenant id): the action's concurrencyPerKey caps how many of one key run at once (docs/flow-control.md)",
      }),
    ),
    depends_on: Type.Optional(
      Type.Array(
        Type.Union([
          Text({ minLength: 1, maxLength: 64, description: 'the id of an existing task' }),
          Type.Integer({ minimum: 0, description: 'in /tasks/batch: the index of an earlier item' }),
        ]),
        {
          maxItems: DEPENDS_ON_MAX,
          description:
            'tasks that must complete first; the task is `blocked` until then (docs/workflows.md). An unknown id is a 400.',
        },
      ),
    ),
    on_dependency_failure: Type.Optional(
      Type.Unsafe<DependencyFailurePolicy>({
        type: 'string',
        enum: [...DEPENDENCY_FAILURE_POLICIES],
        description:
          'when a dependency fails for good or is cancelled: `fail` this task with it (default) or `run` it anyway',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateTaskBody = Static<typeof CreateTaskBody>;

export const CreatedTask = Type.Object({ id: Type.String({ format: 'uuid' }), status: TaskStatusSchema });

/** A neighbour of a task in its graph. */
export const GraphNodeSchema = Type.Object({
  id: Type.String(),
  action: Type.String(),
  status: TaskStatusSchema,
});

/** The task as the HTTP API shows it: JSON values, ISO 8601 times (views.ts maps a row to it). */
export const TaskSchema = Type.Object(
  {
    id: Type.String(),
    action: Type.String(),
    data: Type.Record(Type.String(), JsonAny),
    status: TaskStatusSchema,
    result: JsonAny,
    error: Nullable(Type.String()),
    attempts: Type.Integer(),
    max_attempts: Type.Integer(),
    priority: Type.Integer(),
    concurrency_key: Nullable(Type.String({ description: 'the key its action caps per key, if any' })),
    progress: Nullable(Type.Integer()),
    progress_message: Nullable(Type.String()),
    run_at: Type.String({ description: 'ISO 8601' }),
    created_at: Type.String({ description: 'ISO 8601' }),
    claimed_at: Nullable(Type.String()),
    started_at: Nullable(Type.String()),
    processed_at: Nullable(Type.String()),
    traceparent: Nullable(
      Type.String({ description: 'W3C trace context the task continues (docs/tracing.md); null when none' }),
    ),
    parent_id: Nullable(
      Type.String({ description: 'the task whose handler enqueued this one (ctx.enqueue)' }),
    ),
    pending_dependencies: Type.Integer({
      description: 'dependencies not yet completed; a blocked task waits for them',
    }),
    on_dependency_failure: Type.String({ enum: [...DEPENDENCY_FAILURE_POLICIES] }),
    depends_on: Type.Optional(
      Type.Array(GraphNodeSchema, {
        description: 'GET /tasks/:id only: the tasks it depends on (or the children it waits for), up to 100',
      }),
    ),
    dependents: Type.Optional(
      Type.Array(GraphNodeSchema, {
        description: 'GET /tasks/:id only: the tasks that depend on it, up to 100',
      }),
    ),
    children: Type.Optional(
      Type.Array(GraphNodeSchema, {
        description: 'GET /tasks/:id only: the tasks its handler enqueued, up to 100',
      }),
    ),
  },
  { $id: 'Task' },
);
export type TaskView = Static<typeof TaskSchema>;

export const ListTasksQuery = Type.Object(
  {
    status: Type.Optional(TaskStatusSchema),
    action: Type.Optional(Text({ minLength: 1, maxLength: ACTION_MAX_LENGTH })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_LIMIT_MAX, default: LIST_LIMIT_DEFAULT })),
    cursor: Type.Optional(
      Text({ minLength: 1, maxLength: 64, description: 'next_cursor of the previous page' }),
    ),
  },
  { additionalProperties: false },
);
export type ListTasksQuery = Static<typeof ListTasksQuery>;

export const TaskList = Type.Object({
  tasks: Type.Array(Type.Ref('Task')),
  count: Type.Integer({ description: 'tasks on this page' }),
  next_cursor: Nullable(Type.String({ description: 'pass as ?cursor= for the next page; null on the last' })),
});

export const TaskIdParams = Type.Object({ id: Text({ minLength: 1, maxLength: 64 }) });
/** The Idempotency-Key header; idempotencyKeyOf checks its length. */
export const IdempotencyKeyHeader = Text({ description: 'deduplicates repeated requests' });
/** W3C Trace Context headers (docs/tracing.md); a malformed traceparent is ignored, not refused. */
export const TraceHeaders = {
  traceparent: Text({
    description:
      'W3C trace context of the producer (`00-<trace id>-<span id>-<flags>`): the task and its handler continue this trace. A malformed value is ignored.',
  }),
  tracestate: Text({ description: 'W3C tracestate, kept with a valid traceparent' }),
};
export type TaskIdParams = Static<typeof TaskIdParams>;
/** The task id of a path, as stored: UUIDs are case-insensitive (RFC 9562), stored ids lower case. */
export const taskIdOf = (params: TaskIdParams): string => params.id.toLowerCase();

export const HealthSchema = Type.Object({
  status: Type.String(),
  role: Type.String(),
  checks: Type.Record(Type.String(), Type.String()),
});

export const BATCH_MAX = 1000;
export const WAIT_MAX_SECONDS = 60;

export const BatchBody = Type.Object(
  {
    tasks: Type.Array(Type.Unknown({ description: 'a POST /tasks body' }), {
      minItems: 1,
      maxItems: BATCH_MAX,
      description: 'each item has the shape of a POST /tasks body; all are stored in one transaction or none',
    }),
  },
  { additionalProperties: false },
);
export type BatchBody = Static<typeof BatchBody>;

export const BatchCreated = Type.Object({
  ids: Type.Array(Type.String(), { description: 'the task ids, in the order of the request' }),
});

export const BatchError = Type.Object({
  error: Type.String(),
  code: Type.Optional(Type.String()),
  errors: Type.Optional(
    Type.Array(Type.Object({ index: Type.Integer(), error: Type.String() }), {
      description: 'every bad item',
    }),
  ),
});

export const GetTaskQuery = Type.Object(
  {
    wait: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: WAIT_MAX_SECONDS,
        description: 'long-poll: answer when the task finishes or after this many seconds',
      }),
    ),
  },
  { additionalProperties: false },
);
export type GetTaskQuery = Static<typeof GetTaskQuery>;

const StatusCounts = Type.Object(
  Object.fromEntries(TASK_STATUSES.map((s) => [s, Type.Integer({ minimum: 0 })])) as Record<
    (typeof TASK_STATUSES)[number],
    ReturnType<typeof Type.Integer>
  >,
);

export const StatsSchema = Type.Object(
  {
    counts: StatusCounts,
    total: Type.Integer({ minimum: 0 }),
    by_action: Type.Array(
      Type.Object({ action: Type.String(), counts: StatusCounts, total: Type.Integer() }),
    ),
    oldest_queued_age_ms: Nullable(
      Type.Integer({ description: 'age of the oldest queued task; null if none' }),
    ),
    throughput: Type.Array(
      Type.Object({
        minute: Type.String({ description: 'start of the minute, ISO 8601' }),
        completed: Type.Integer(),
        failed: Type.Integer(),
      }),
      { description: 'tasks finished per minute over the last hour, oldest first, one point per minute' },
    ),
    generated_at: Type.String({ description: 'ISO 8601' }),
  },
  { $id: 'Stats' },
);
export type Stats = Static<typeof StatsSchema>;
