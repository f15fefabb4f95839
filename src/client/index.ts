/**
 * Typed client for producers, in Node and in the browser: only `fetch`, no Node imports.
 *
 * @example
 * const client = new TaskqClient({ baseUrl: 'http://localhost:8080' });
 * const { id } = await client.enqueue('uppercase', { text: 'hi' });
 * const task = await client.wait(id, { timeoutMs: 30_000 });
 */
import type { TaskStatus } from '../core/task.js';
import type {
  AttemptView,
  NodeListView,
  OperationView,
  Stats,
  TaskView,
  WAIT_MAX_SECONDS as SERVER_WAIT_MAX_SECONDS,
} from '../api/schemas.js';
import type {
  ActionItem,
  AuditEntryItem,
  AuditListItem,
  PauseStateItem,
  ScheduleItem,
  ScheduleRunItem,
} from '../api/console-schemas.js';
import type { Meta } from '../api/routes/meta.js';

export type Task = TaskView;
/** One finished attempt in a task's `attempt_history`. */
export type Attempt = AttemptView;
/** GET /nodes: the nodes, how many are live, and the no-live-worker warning. */
export type NodeList = NodeListView;
/** A bulk operation (POST /tasks/bulk) as GET /operations/:id shows it. */
export type Operation = OperationView;
/** One operator action in the audit log (GET /audit). */
export type AuditEntry = AuditEntryItem;
/** A page of the audit log, newest first. */
export type AuditPage = AuditListItem;
export type { ActionItem, Meta, PauseStateItem, ScheduleItem, ScheduleRunItem, Stats, TaskStatus };

/** Filters and paging of GET /audit. */
export interface AuditOptions {
  /** A token's name. */
  token?: string;
  /** e.g. `tasks.retry`, `bulk.delete`. */
  action?: string;
  limit?: number;
  cursor?: string;
}

/**
 * A filter in the grammar of GET /tasks (docs/api.md, "Filters"): `{status: 'failed',
 * action: 'send-email', 'data.user_id': 42, error: 'timeout', created_after: '2026-12-01T00:00:00Z'}`.
 */
export type Filter = Record<string, string | number | boolean>;

export type BulkOp = 'retry' | 'cancel' | 'delete';

/** The answer of POST /tasks/bulk: a count (dry run), or the operation that does the work. */
export interface BulkAnswer {
  /** Absent for a dry run. */
  operation_id?: string;
  status?: string;
  matched: number;
  /** False: at least `matched`. */
  matched_exact: boolean;
  scans: boolean;
}

export interface TaskqClientOptions {
  /** e.g. `http://localhost:8080` */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` when the service requires one. */
  token?: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /**
   * The caller's trace context for each enqueue, sent as the W3C headers so the task and its
   * handler continue the caller's trace (docs/tracing.md). With OpenTelemetry:
   * `() => { const h = {}; propagation.inject(context.active(), h); return h; }`.
   * The client imports no tracing package itself.
   */
  traceContext?: () => TraceContext | undefined;
}

/** W3C Trace Context headers. */
export interface TraceContext {
  traceparent?: string;
  tracestate?: string;
}

export interface EnqueueOptions {
  maxAttempts?: number;
  priority?: number;
  /** Not run before this time. */
  runAt?: Date | string;
  /** Not run before now + this many ms. */
  delayMs?: number;
  /** A repeated key answers the original task instead of queuing another. */
  idempotencyKey?: string;
  /** Groups tasks (say a tenant id) for the action's concurrencyPerKey cap (docs/flow-control.md). */
  concurrencyKey?: string;
  /** Ids of tasks that must complete first: the task is `blocked` until then (docs/workflows.md). */
  dependsOn?: string[];
  /** When a dependency fails for good or is cancelled: fail with it (default) or run anyway. */
  onDependencyFailure?: 'fail' | 'run';
}

export interface BatchItem extends Omit<EnqueueOptions, 'dependsOn'> {
  action: string;
  data?: Record<string, unknown>;
  /** Task ids, or the indexes of earlier items of the same batch. */
  dependsOn?: (string | number)[];
}

/** One step of a flow (`client.flow`): a task, named by `key`, run after the steps in `after`. */
export interface FlowStep extends Omit<EnqueueOptions, 'dependsOn'> {
  key: string;
  action: string;
  data?: Record<string, unknown>;
  /** Keys of earlier steps, and ids of existing tasks, that must complete first. */
  after?: string[];
}

/** A neighbour of a task in its graph, as GET /tasks/:id lists it. */
export interface GraphNode {
  id: string;
  action: string;
  status: TaskStatus;
  /** Its dependencies not yet completed (absent from servers older than this client). */
  pending_dependencies?: number;
}

export interface ListOptions {
  status?: TaskStatus;
  action?: string;
  /** More conditions of the filter grammar. */
  filter?: Filter;
  /** Page size, 1..1000. */
  limit?: number;
}

export interface TaskPage {
  tasks: Task[];
  count: number;
  next_cursor: string | null;
  /** The page is one bounded scan window (it may hold fewer tasks than the limit). */
  scans?: boolean;
}

/** Any answer the service refused; `code` is the stable TQ_ERR_* code. */
export class TaskqError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'TaskqError';
  }
}
export class TaskqValidationError extends TaskqError {
  override name = 'TaskqValidationError';
}
export class TaskqUnauthorizedError extends TaskqError {
  override name = 'TaskqUnauthorizedError';
}
/** 403: the token is valid but lacks the route's scope (the message names both). */
export class TaskqForbiddenError extends TaskqError {
  override name = 'TaskqForbiddenError';
}
export class TaskqNotFoundError extends TaskqError {
  override name = 'TaskqNotFoundError';
}
export class TaskqConflictError extends TaskqError {
  override name = 'TaskqConflictError';
}
export class TaskqUnavailableError extends TaskqError {
  override name = 'TaskqUnavailableError';
}
/** `wait()` ran out of time before the task finished; `task` is its last state. */
export class TaskqTimeoutError extends Error {
  override name = 'TaskqTimeoutError';
  constructor(readonly task: Task) {
    super(`task ${task.id} is still ${task.status}`);
  }
}

const ERRORS_BY_STATUS: Record<number, typeof TaskqError> = {
  400: TaskqValidationError,
  401: TaskqUnauthorizedError,
  403: TaskqForbiddenError,
  404: TaskqNotFoundError,
  409: TaskqConflictError,
  503: TaskqUnavailableError,
};
const FINISHED: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];
// The client imports nothing at run time (it runs in browsers too), so the server's limit is
// repeated here; its type makes the compiler fail if the two ever differ.
const WAIT_MAX_SECONDS: typeof SERVER_WAIT_MAX_SECONDS = 60;
/** How long `wait()` waits when not told. */
export const WAIT_TIMEOUT_MS_DEFAULT = 60_000;

function toBody(
  action: string,
  data: Record<string, unknown> | undefined,
  options: BatchItem | EnqueueOptions,
) {
  const runAt = options.runAt instanceof Date ? options.runAt.toISOString() : options.runAt;
  return {
    action,
    ...(data === undefined ? {} : { data }),
    ...(options.maxAttempts === undefined ? {} : { max_attempts: options.maxAttempts }),
    ...(options.priority === undefined ? {} : { priority: options.priority }),
    ...(runAt === undefined ? {} : { run_at: runAt }),
    ...(options.delayMs === undefined ? {} : { delay_ms: options.delayMs }),
    ...(options.idempotencyKey === undefined ? {} : { unique_key: options.idempotencyKey }),
    ...(options.concurrencyKey === undefined ? {} : { concurrency_key: options.concurrencyKey }),
    ...(options.dependsOn === undefined ? {} : { depends_on: options.dependsOn }),
    ...(options.onDependencyFailure === undefined
      ? {}
      : { on_dependency_failure: options.onDependencyFailure }),
  };
}

/** Every item of a cursor-paged listing, page by page; `page` answers the items and the next cursor. */
async function* everyPage<T>(
  page: (cursor: string | undefined) => Promise<[readonly T[], string | null]>,
): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const [items, next] = await page(cursor);
    yield* items;
    cursor = next ?? undefined;
  } while (cursor);
}

/** `?a=1&b=2` of the defined values; '' when there are none. */
function queryOf(values: Record<string, string | number | boolean | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) if (value !== undefined) query.set(key, String(value));
  const qs = query.toString();
  return qs ? `?${qs}` : '';
}

export class TaskqClient {
  private readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly options: TaskqClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Queues a task; resolves once the service has committed it. */
  enqueue(
    action: string,
    data?: Record<string, unknown>,
    options: EnqueueOptions = {},
  ): Promise<{ id: string; status: TaskStatus }> {
    return this.request('POST', '/tasks', toBody(action, data, options), this.traceHeaders());
  }

  /** Queues up to 1,000 tasks in one transaction: all or none. */
  enqueueBatch(tasks: BatchItem[]): Promise<{ ids: string[] }> {
    const body = { tasks: tasks.map((t) => toBody(t.action, t.data, t)) };
    return this.request('POST', '/tasks/batch', body, this.traceHeaders());
  }

  /**
   * Queues a graph of tasks in one transaction (all or none): each step runs after the steps
   * named in its `after` (earlier steps only, so no cycle can be written) and any task ids there.
   * Resolves with each step's task id by key.
   *
   * @example
   * const { ids } = await client.flow([
   *   { key: 'fetch', action: 'fetch', data: { url } },
   *   { key: 'thumb', action: 'resize', data: { size: 64 }, after: ['fetch'] },
   *   { key: 'large', action: 'resize', data: { size: 1024 }, after: ['fetch'] },
   *   { key: 'publish', action: 'publish', after: ['thumb', 'large'] },
   * ]);
   */
  async flow(steps: FlowStep[]): Promise<{ ids: Record<string, string> }> {
    const keys = new Set(steps.map((step) => step.key));
    if (keys.size < steps.length) throw new TypeError('flow: step keys must be distinct');
    const index = new Map<string, number>();
    const items = steps.map(({ key, after = [], ...item }, i): BatchItem => {
      const dependsOn = after.map((name) => {
        // A name of an earlier step is its index in the batch; anything else is a task id.
        const earlier = index.get(name);
        if (earlier === undefined && keys.has(name))
          throw new TypeError(`flow: step "${key}" runs after "${name}", which must come before it`);
        return earlier ?? name;
      });
      index.set(key, i);
      return { ...item, dependsOn };
    });
    const { ids } = await this.enqueueBatch(items);
    return { ids: Object.fromEntries(steps.map((step, i) => [step.key, ids[i] as string])) };
  }

  /** The tasks task `id` depends on (its depends_on, or the children it waits for), with their statuses. */
  async dependencies(id: string): Promise<GraphNode[]> {
    return (await this.get(id)).depends_on ?? [];
  }

  /** The tasks that depend on task `id`. */
  async dependents(id: string): Promise<GraphNode[]> {
    return (await this.get(id)).dependents ?? [];
  }

  /** The tasks the handler of task `id` enqueued (ctx.enqueue). */
  async children(id: string): Promise<GraphNode[]> {
    return (await this.get(id)).children ?? [];
  }

  /** The trace headers of the caller's context, only those the hook gave. */
  private traceHeaders(): Record<string, string> | undefined {
    const trace = this.options.traceContext?.();
    if (!trace?.traceparent) return undefined;
    return trace.tracestate
      ? { traceparent: trace.traceparent, tracestate: trace.tracestate }
      : { traceparent: trace.traceparent };
  }

  get(id: string): Promise<Task> {
    return this.request('GET', `/tasks/${encodeURIComponent(id)}`);
  }

  /** One page of tasks, newest first. */
  listPage(options: ListOptions & { cursor?: string } = {}): Promise<TaskPage> {
    const { filter, ...rest } = options;
    return this.request('GET', `/tasks${queryOf({ ...filter, ...rest })}`);
  }

  /** One page of the audit log, newest first (an admin token's). */
  auditPage(options: AuditOptions = {}): Promise<AuditPage> {
    return this.request('GET', `/audit${queryOf({ ...options })}`);
  }

  /** Every audit entry matching the filters, newest first, fetched page by page. */
  audit(options: Omit<AuditOptions, 'cursor'> = {}): AsyncGenerator<AuditEntry> {
    return everyPage(async (cursor) => {
      const page = await this.auditPage({ ...options, cursor });
      return [page.entries, page.next_cursor];
    });
  }

  /** The service's vocabulary, and the request's token with its scopes (null without tokens). */
  meta(): Promise<Meta> {
    return this.request('GET', '/meta');
  }

  /** Every task matching the filters, newest first, fetched page by page. */
  list(options: ListOptions = {}): AsyncGenerator<Task> {
    return everyPage(async (cursor) => {
      const page = await this.listPage({ ...options, cursor });
      return [page.tasks, page.next_cursor];
    });
  }

  /** Resolves with the task once it is finished; throws TaskqTimeoutError after `timeoutMs`. */
  async wait(
    id: string,
    { timeoutMs = WAIT_TIMEOUT_MS_DEFAULT }: { timeoutMs?: number } = {},
  ): Promise<Task> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const seconds = Math.max(0, Math.min(WAIT_MAX_SECONDS, left / 1000));
      const task: Task = await this.request(
        'GET',
        `/tasks/${encodeURIComponent(id)}?wait=${seconds.toFixed(3)}`,
      );
      if (FINISHED.includes(task.status)) return task;
      if (Date.now() >= deadline) throw new TaskqTimeoutError(task);
    }
  }

  cancel(id: string): Promise<Task> {
    return this.request('POST', `/tasks/${encodeURIComponent(id)}/cancel`);
  }

  retry(id: string): Promise<Task> {
    return this.request('POST', `/tasks/${encodeURIComponent(id)}/retry`);
  }

  /**
   * Retries, cancels or deletes every task `filter` matches, in the background; with `dryRun`
   * only counts them. The answer names the operation to follow (`operation`, `followOperation`).
   */
  bulk(
    op: BulkOp,
    filter: Filter,
    { dryRun, idempotencyKey }: { dryRun?: boolean; idempotencyKey?: string } = {},
  ): Promise<BulkAnswer> {
    const headers = idempotencyKey === undefined ? undefined : { 'idempotency-key': idempotencyKey };
    return this.request('POST', '/tasks/bulk', { op, filter, ...(dryRun && { dry_run: true }) }, headers);
  }

  operation(id: string): Promise<Operation> {
    return this.request('GET', `/operations/${encodeURIComponent(id)}`);
  }

  /** The operation after each step, from its event stream, until it is finished. */
  async *followOperation(id: string, { signal }: { signal?: AbortSignal } = {}): AsyncGenerator<Operation> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const response = await this.fetchFn(`${this.baseUrl}/operations/${encodeURIComponent(id)}/events`, {
      headers,
      signal,
    });
    if (!response.ok || !response.body) {
      await this.operation(id); // throws the typed error of the answer
      throw new TaskqError(
        `GET /operations/${id}/events answered ${response.status}`,
        response.status,
        'TQ_ERR_HTTP',
        undefined,
      );
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const message = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = message.split('\n').find((line) => line.startsWith('data: '));
        if (message.startsWith('event: operation') && data) yield JSON.parse(data.slice(6)) as Operation;
      }
    }
  }

  /** The nodes live now and those gone in the last hour, with the no-live-worker warning. */
  nodes(): Promise<NodeList> {
    return this.request('GET', '/nodes');
  }

  /** Counts by status and action, oldest queued age, throughput. */
  stats(): Promise<Stats> {
    return this.request('GET', '/stats');
  }

  /** Every action: paused, counts, throughput, failure rate, run time p50/p95, queue age, limits. */
  actions(): Promise<{ actions: ActionItem[]; generated_at: string }> {
    return this.request('GET', '/actions');
  }

  /** No node claims the action's tasks from the answer on; running ones finish. */
  pauseAction(action: string): Promise<PauseStateItem> {
    return this.request('POST', `/actions/${encodeURIComponent(action)}/pause`);
  }

  resumeAction(action: string): Promise<PauseStateItem> {
    return this.request('POST', `/actions/${encodeURIComponent(action)}/resume`);
  }

  /** The recurring tasks with next and last run and their pause. */
  schedules(): Promise<{ schedules: ScheduleItem[] }> {
    return this.request('GET', '/schedules');
  }

  pauseSchedule(name: string): Promise<ScheduleItem> {
    return this.request('POST', `/schedules/${encodeURIComponent(name)}/pause`);
  }

  resumeSchedule(name: string): Promise<ScheduleItem> {
    return this.request('POST', `/schedules/${encodeURIComponent(name)}/resume`);
  }

  /** Queues one run now; the same `idempotencyKey` queues it once. */
  runSchedule(name: string, options: { idempotencyKey?: string } = {}): Promise<ScheduleRunItem> {
    const headers = options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : undefined;
    return this.request('POST', `/schedules/${encodeURIComponent(name)}/run`, undefined, headers);
  }

  private async request<T>(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders?: Record<string, string>,
  ): Promise<T> {
    const headers: Record<string, string> = { ...extraHeaders };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const response = await this.fetchFn(`${this.baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!response.ok) {
      const payload = (parsed ?? {}) as { error?: string; code?: string };
      const ErrorClass = ERRORS_BY_STATUS[response.status] ?? TaskqError;
      throw new ErrorClass(
        payload.error ?? `${method} ${path} answered ${response.status}`,
        response.status,
        payload.code ?? 'TQ_ERR_HTTP',
        parsed,
      );
    }
    return parsed as T;
  }
}
