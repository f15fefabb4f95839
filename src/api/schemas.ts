/**
 * The HTTP API's schemas: one definition serves request validation, the TypeScript types of the
 * handlers, response serialization and the OpenAPI document.
 */
import { Type, type Static, type StringOptions, type TSchema } from '@sinclair/typebox';
import { BULK_OPS } from '../queue/bulk.js';
import { DATA_PREFIX, FILTER_FIELDS, FILTER_KEYS } from '../core/filter.js';
import {
  ATTEMPT_OUTCOMES,
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
export const GraphNodeSchema = Type.Object(
  {
    id: Type.String({ description: "the neighbour's id (GET /tasks/:id reads it)" }),
    action: Type.String({ description: "the neighbour's action" }),
    status: TaskStatusSchema,
    pending_dependencies: Type.Integer({
      description: 'its dependencies not yet completed (what it waits for while blocked)',
    }),
  },
  { description: 'a task next to this one in its graph (docs/workflows.md)' },
);
export type GraphNodeView = Static<typeof GraphNodeSchema>;
/** One finished attempt of a task (core/task.ts AttemptRecord), times as ISO 8601. */
export const AttemptSchema = Type.Object(
  {
    attempt: Type.Integer({
      description: 'the attempt number, 1 for the first run (an operator retry counts from 1 again)',
    }),
    node: Nullable(Type.String({ description: 'the node that ran it (GET /nodes)' })),
    claimed_at: Nullable(Type.String({ description: 'ISO 8601' })),
    started_at: Nullable(Type.String({ description: 'ISO 8601; null when its handler never started' })),
    finished_at: Type.String({ description: 'ISO 8601' }),
    outcome: Type.Unsafe<(typeof ATTEMPT_OUTCOMES)[number]>({
      type: 'string',
      enum: [...ATTEMPT_OUTCOMES],
      description:
        'completed; error (the handler threw); timeout; lease_lost (its node stopped renewing the lease and the task was taken back); cancelled',
    }),
    error: Nullable(Type.String()),
    stack: Nullable(Type.String({ description: "the thrown error's stack, when it had one" })),
  },
  { $id: 'Attempt' },
);
export type AttemptView = Static<typeof AttemptSchema>;

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
    on_dependency_failure: Type.String({
      enum: [...DEPENDENCY_FAILURE_POLICIES],
      description:
        'what it does when a dependency fails for good or is cancelled: fail with it, or run anyway',
    }),
    depends_on: Type.Optional(
      Type.Array(GraphNodeSchema, {
        description:
          'GET /tasks/:id only: the tasks it depends on (or the children it waits for), up to 100 (graph_counts has how many)',
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
    parent: Type.Optional(
      Type.Union([GraphNodeSchema, Type.Null()], {
        description: 'GET /tasks/:id only: the task whose handler enqueued it (parent_id), or null',
      }),
    ),
    graph_counts: Type.Optional(
      Type.Object(
        {
          depends_on: Type.Integer({ description: 'how many tasks it depends on' }),
          dependents: Type.Integer({ description: 'how many tasks depend on it' }),
          children: Type.Integer({ description: 'how many tasks its handler enqueued' }),
        },
        {
          description:
            'GET /tasks/:id only: the length of each list, which shows at most 100; counted up to 10,000 (10,000 means that many or more)',
        },
      ),
    ),
    node: Nullable(
      Type.String({ description: 'while running: the node running it (GET /nodes); else null' }),
    ),
    attempt_history: Type.Optional(
      // A reference to the shared Attempt schema, typed as what it refers to.
      Type.Unsafe<AttemptView[]>(
        Type.Array(Type.Ref('Attempt'), {
          description:
            'its finished attempts, oldest first, at most --attempt-history of them; in GET /tasks/{id} and its event stream, not in listings',
        }),
      ),
    ),
  },
  { $id: 'Task' },
);
export type TaskView = Static<typeof TaskSchema>;

/** What each filter key means, from the grammar's one description (core/filter.ts). */
const filterDoc = (key: string) => {
  const field = FILTER_FIELDS.find((f) => f.key === key);
  return field ? `${field.description}${field.indexed ? '' : ' (narrows a bounded scan: see `scans`)'}` : key;
};
/** The grammar's keys other than status and action, as query-string text (parseFilter checks them). */
const FILTER_TEXT_KEYS = Object.fromEntries(
  FILTER_KEYS.filter((k) => k !== 'status' && k !== 'action').map((k) => [
    k,
    Type.Optional(Text({ minLength: 1, maxLength: 40_000, description: filterDoc(k) })),
  ]),
);
/** `data.<field>=<value>` keys of the filter grammar. */
const DATA_KEY_PATTERN = `^${DATA_PREFIX.replace('.', '\\.')}`;

export const ListTasksQuery = Type.Object(
  {
    status: Type.Optional(TaskStatusSchema),
    action: Type.Optional(Text({ minLength: 1, maxLength: ACTION_MAX_LENGTH })),
    ...FILTER_TEXT_KEYS,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_LIMIT_MAX, default: LIST_LIMIT_DEFAULT })),
    cursor: Type.Optional(
      Text({ minLength: 1, maxLength: 64, description: 'next_cursor of the previous page' }),
    ),
  },
  {
    // Unknown keys reach parseFilter, which refuses them with a "did you mean".
    additionalProperties: Text({ maxLength: 1000 }),
    patternProperties: {
      [DATA_KEY_PATTERN]: Text({ maxLength: 1000, description: filterDoc('data.<field>') }),
    },
  },
);
export type ListTasksQuery = Static<typeof ListTasksQuery>;

export const TaskList = Type.Object({
  tasks: Type.Array(Type.Ref('Task')),
  count: Type.Integer({ description: 'tasks on this page' }),
  next_cursor: Nullable(Type.String({ description: 'pass as ?cursor= for the next page; null on the last' })),
  scans: Type.Boolean({
    description:
      'the filter has conditions no index answers: the page is one bounded scan window and may hold fewer tasks than the limit (even none) while next_cursor continues',
  }),
});

/** A filter object of POST /tasks/bulk: the same keys and values as GET /tasks's query string. */
export const FilterObject = Type.Record(
  Type.String(),
  Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]),
  {
    description:
      'the filter grammar of GET /tasks (docs/api.md, "Filters"): status, action, id, data.<field>, error, created_after, created_before, finished_after, finished_before; {} matches every task',
  },
);

export const BulkBody = Type.Object(
  {
    op: Type.Unsafe<(typeof BULK_OPS)[number]>({ type: 'string', enum: [...BULK_OPS] }),
    filter: FilterObject,
    dry_run: Type.Optional(Type.Boolean({ description: 'only count the matching tasks' })),
  },
  { additionalProperties: false },
);
export type BulkBody = Static<typeof BulkBody>;

const MatchedFields = {
  matched: Type.Integer({ minimum: 0, description: 'tasks the filter matches' }),
  matched_exact: Type.Boolean({
    description: 'false: at least `matched` (counted within a bounded window); exact once the operation ends',
  }),
  scans: Type.Boolean({ description: 'the filter has conditions no index answers' }),
};
export const BulkCount = Type.Object(MatchedFields);
export const BulkAccepted = Type.Object({
  operation_id: Type.String({ format: 'uuid' }),
  status: Type.String({ description: 'running or completed' }),
  ...MatchedFields,
});

export const OperationSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    op: Type.String({ description: 'retry, cancel or delete' }),
    filter: Type.Record(Type.String(), Type.String(), { description: 'the filter, in canonical form' }),
    status: Type.String({ description: 'running or completed' }),
    matched: Type.Integer({ description: 'tasks that match; exact when matched_exact' }),
    matched_exact: Type.Boolean(),
    done: Type.Integer({ description: 'tasks changed so far' }),
    skipped: Type.Integer({
      description: 'matching tasks left as they were (not retryable, already finished, running)',
    }),
    errors: Type.Integer({ description: 'steps that failed and were tried again' }),
    last_error: Nullable(Type.String()),
    created_by: Nullable(Type.String()),
    created_at: Type.String({ description: 'ISO 8601' }),
    updated_at: Type.String({ description: 'ISO 8601' }),
    finished_at: Nullable(Type.String()),
  },
  { $id: 'Operation' },
);
export type OperationView = Static<typeof OperationSchema>;
export const OperationIdParams = Type.Object({ id: Text({ minLength: 1, maxLength: 64 }) });
export type OperationIdParams = Static<typeof OperationIdParams>;

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

export const StatusCounts = Type.Object(
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

/** A node (one taskq process), as GET /nodes lists it. */
export const NodeSchema = Type.Object({
  id: Type.String({ description: 'the node id; running tasks name it as their `node`' }),
  host: Type.String(),
  pid: Type.Integer(),
  role: Type.Union([Type.Literal('all'), Type.Literal('api'), Type.Literal('worker')]),
  version: Type.String(),
  status: Type.Union([Type.Literal('live'), Type.Literal('gone')], {
    description: 'gone: stopped, or missed three heartbeats',
  }),
  started_at: Type.String({ description: 'ISO 8601' }),
  last_seen_at: Type.String({ description: 'its last heartbeat (or its stop), ISO 8601' }),
  stopped_at: Nullable(Type.String({ description: 'when it stopped gracefully, ISO 8601' })),
  heartbeat_ms: Type.Integer({ description: 'its heartbeat period' }),
  concurrency: Type.Integer({ description: 'handlers it may run at once; 0 on an API-only node' }),
  running: Type.Integer({ description: 'handlers running at its last heartbeat' }),
  buffered: Type.Integer({ description: 'tasks claimed and waiting in its memory' }),
  tasks: Type.Array(Type.String(), { description: 'ids of the tasks it runs (at most 100)' }),
});

export const NodeList = Type.Object({
  nodes: Type.Array(NodeSchema, { description: 'live nodes and those gone in the last hour, oldest first' }),
  live: Type.Integer({ description: 'live nodes' }),
  warning: Nullable(
    Type.Object(
      {
        code: Type.Literal('no_live_worker'),
        message: Type.String(),
        queued: Type.Integer({ description: 'tasks waiting' }),
      },
      { description: 'tasks are queued and no live node runs workers' },
    ),
  ),
  generated_at: Type.String({ description: 'ISO 8601' }),
});
export type NodeListView = Static<typeof NodeList>;
