/**
 * The producer side of the queue: accepts tasks, reads them back, and applies operator actions.
 * Enqueues from concurrent requests are group-committed (see batcher.ts): a caller's promise
 * resolves only after the transaction holding its task is committed, so a 202 is never sent for
 * a task that is not on disk.
 */
import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import { IDEMPOTENCY_WINDOW_MS_DEFAULT, POLL_MS_DEFAULT } from '../core/config.js';
import type { ActionPause } from '../core/actions.js';
import { QueueError } from '../core/errors.js';
import { actionLimitsOf, type ActionLimits, type RateLimit } from '../core/flow.js';
import type { TaskFilter } from '../core/filter.js';
import {
  asClaimed,
  hasGraph,
  isFinished,
  type DependencyFailurePolicy,
  type DependencyRef,
  type JsonObject,
  type NewTask,
  type TaskRecord,
  type TaskStatus,
} from '../core/task.js';
import type {
  ActionStatsRead,
  GraphNode,
  InsertClaim,
  InsertedTask,
  QueueDriver,
  ScheduleState,
  TaskGraph,
  TaskCounts,
  ThroughputPoint,
  Unsubscribe,
} from '../drivers/driver.js';
import type { HandlerDefinition } from '../handlers/handler.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { Batcher } from './batcher.js';
import { AuditLog } from './audit.js';
import { BulkOperations } from './bulk.js';
import {
  activeTracer,
  passThrough,
  tracedEnqueue,
  type StoredTraceContext,
  type TraceHeaders,
} from './tracing.js';
import { TaskWatcher } from './watcher.js';
import { nodesReport, type NodesReport } from './nodes.js';

// The queue's own words for what it reads; the layers above import them from here, not from drivers/.
export type {
  ActionStatsRead,
  GraphNode,
  ScheduleState,
  TaskCounts,
  TaskGraph,
  ThroughputPoint,
  Unsubscribe,
};

export interface EnqueueInput {
  action: string;
  data?: JsonObject;
  maxAttempts?: number;
  priority?: number;
  /** Not before this time (epoch ms). */
  runAt?: number;
  /** Not sooner than this many ms after it is queued (instead of `runAt`). */
  delayMs?: number;
  uniqueKey?: string;
  /** How long `uniqueKey` deduplicates; defaults to the queue's window. */
  uniqueForMs?: number;
  /**
   * The producer's W3C trace context (an HTTP request's headers); a library caller's active
   * context is used without it. A malformed value is ignored (docs/tracing.md).
   */
  trace?: TraceHeaders;
  /** Caps, with the action's concurrencyPerKey, how many tasks of this key run at once. */
  concurrencyKey?: string;
  /**
   * Tasks that must complete first: ids of existing tasks, or (in enqueueMany) indexes of
   * earlier tasks of the same batch. The task is `blocked` until then (docs/workflows.md).
   */
  dependsOn?: (string | number)[];
  /** What to do when a dependency fails for good or is cancelled. @defaultValue 'fail' */
  onDependencyFailure?: DependencyFailurePolicy;
  /** The running task that enqueues this one (a handler's ctx.enqueue). */
  parentId?: string;
}

/** Most dependencies one task may name. */
export const DEPENDS_ON_MAX = 100;
/** Most dependencies, dependents and children GET /tasks/:id shows of each kind. */
export const GRAPH_LIMIT = 100;
/** GET /tasks/:id counts each list of the graph up to this many (a count this high means "or more"). */
export const GRAPH_COUNT_MAX = 10_000;

export interface EnqueueResult {
  task: TaskRecord;
  /** False when an idempotency key matched an existing task. */
  inserted: boolean;
}

export interface ListInput {
  status?: TaskStatus;
  action?: string;
  /** The filter grammar's conditions (core/filter.ts). */
  filter?: TaskFilter;
  limit: number;
  cursor?: string;
}

export interface TaskPage {
  tasks: TaskRecord[];
  nextCursor: string | null;
  /**
   * The filter has conditions no index answers: the page is one bounded scan window, and may
   * hold fewer than `limit` tasks (even none) while `nextCursor` still continues below it.
   */
  scans: boolean;
}

export interface QueueOptions {
  driver: QueueDriver;
  /** How often a waiting request re-reads its task when change events may not reach this process. */
  pollMs?: number;
  registry: HandlerRegistry;
  defaultMaxAttempts: number;
  /** How long an idempotency key deduplicates. */
  uniqueWindowMs?: number;
  /** Most tasks in one group commit. */
  maxInsertBatch?: number;
  /** The `--rate-limit` setting, shown with the handlers' own limits (GET /actions). */
  rateLimits?: ReadonlyMap<string, RateLimit>;
}

export const UNIQUE_WINDOW_MS_DEFAULT = IDEMPOTENCY_WINDOW_MS_DEFAULT;

/** A repeated idempotency key must come with the same request; otherwise it is a conflict. */
function checkReplay(requested: NewTask, result: InsertedTask): EnqueueResult {
  if (result.inserted) return result;
  const existing = result.task;
  const same =
    existing.action === requested.action &&
    existing.priority === requested.priority &&
    existing.maxAttempts === requested.maxAttempts &&
    existing.concurrencyKey === (requested.concurrencyKey ?? null) &&
    isDeepStrictEqual(existing.data, requested.data);
  if (!same) {
    throw new QueueError(
      'TQ_ERR_CONFLICT',
      `idempotency key "${requested.uniqueKey}" was used for a different request (task ${existing.id})`,
    );
  }
  return result;
}

/** The dependency fields of a new task (none for a plain one, so its row stays the plain kind). */
function graphOf(input: EnqueueInput): Pick<NewTask, 'dependsOn' | 'onDependencyFailure' | 'parentId'> {
  const refs = input.dependsOn ?? [];
  if (refs.length > DEPENDS_ON_MAX)
    throw new QueueError('TQ_ERR_VALIDATION', `depends_on: at most ${DEPENDS_ON_MAX} tasks`);
  const graph: Pick<NewTask, 'dependsOn' | 'onDependencyFailure' | 'parentId'> = {};
  if (refs.length > 0)
    graph.dependsOn = refs.map((ref): DependencyRef =>
      typeof ref === 'number' ? { index: ref } : { id: ref },
    );
  if (input.onDependencyFailure !== undefined) graph.onDependencyFailure = input.onDependencyFailure;
  if (input.parentId !== undefined) graph.parentId = input.parentId;
  return graph;
}

const newestOf = (tasks: NewTask[]): number => tasks.reduce((t, task) => Math.max(t, task.createdAt), 0);

export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString();
  const match = /^s(\d{1,16})$/.exec(text);
  if (!match)
    throw new QueueError('TQ_ERR_VALIDATION', 'querystring/cursor is not a cursor this service returned');
  return Number(match[1]);
}

/**
 * A worker of this process that takes tasks as they are stored (the worker's producer): the
 * insert stores those it takes already claimed by it, in the same commit, which saves the
 * claim's round trip between a task's commit and its start. It decides which, and holds the room
 * for them until `settle`.
 */
export interface LocalTaker {
  /** Which of `tasks` it takes, or null for none. */
  reserve(tasks: readonly NewTask[]): Reservation | null;
}
export interface Reservation {
  /** The insert's claim: the taker, its lease, and per task whether it is stored claimed. */
  claim: InsertClaim;
  /** Called once the insert settles, with the tasks stored claimed (none if it failed). */
  settle(claimed: TaskRecord[]): void;
}

/** Emitted after the change is committed; metrics count them. */
export interface TaskQueueEvents {
  /** Newly stored tasks (idempotent replays are not included). */
  enqueued: [tasks: TaskRecord[]];
  /** A failed or cancelled task was put back by an operator. */
  retried: [task: TaskRecord];
}

export class TaskQueue extends EventEmitter<TaskQueueEvents> {
  private readonly driver: QueueDriver;
  private readonly registry: HandlerRegistry;
  private readonly inserts: Batcher<NewTask, InsertedTask>;
  private readonly watcher: TaskWatcher;
  /** Bulk operations over a filter (bulk.ts). */
  readonly bulk: BulkOperations;
  /** The operator actions' audit log (audit.ts). */
  readonly audit: AuditLog;
  private taker: LocalTaker | null = null;

  constructor(private readonly options: QueueOptions) {
    super();
    this.driver = options.driver;
    this.bulk = new BulkOperations(options.driver);
    this.audit = new AuditLog(options.driver);
    this.registry = options.registry;
    // With cross-process announcements a lost one is the only reason to re-check: do it rarely.
    const fallbackMs = this.driver.capabilities.crossProcessNotify
      ? 5000
      : (options.pollMs ?? POLL_MS_DEFAULT);
    this.watcher = new TaskWatcher(this.driver, fallbackMs);
    // The clock was read once per task, in prepare(): a batch is as late as its newest task.
    this.inserts = new Batcher((tasks) => this.store(tasks), {
      maxBatch: options.maxInsertBatch ?? 500,
      delayMs: 0,
      // Several batches in flight: while one waits for its sync (SQLite) or its round trip
      // (PostgreSQL), the next is written, so the event loop never idles behind a disk flush.
      maxInFlight: 4,
    });
  }

  /**
   * From now on `taker` (a worker of this process) takes what it has room for as it is stored,
   * until the returned function is called. One taker at a time: the last one set.
   */
  handOffTo(taker: LocalTaker): () => void {
    this.taker = taker;
    return () => {
      if (this.taker === taker) this.taker = null;
    };
  }

  /** One insert of `tasks`, handing the local worker those it takes. */
  private async store(tasks: NewTask[]): Promise<InsertedTask[]> {
    const now = newestOf(tasks);
    const reservation = this.taker?.reserve(tasks) ?? null;
    if (!reservation) return this.driver.insertTasks({ tasks, now });
    const { claim } = reservation;
    let claimed: TaskRecord[] = [];
    try {
      const results = await this.driver.insertTasks({ tasks, now, claim });
      claimed = results.filter((r) => r.claimed).map((r) => asClaimed(r.task, claim));
      return results;
    } finally {
      reservation.settle(claimed);
    }
  }

  /** Checks an input and turns it into a row; throws QueueError for what the schema cannot see. */
  prepare(input: EnqueueInput, now = Date.now()): NewTask {
    const stored = passThrough(input.trace);
    const handler = this.registry.resolve(input.action);
    if (!handler) {
      throw new QueueError(
        'TQ_ERR_UNKNOWN_ACTION',
        `unknown action "${input.action}"; known actions: ${this.registry.actions().join(', ')}`,
      );
    }
    const uniqueKey = input.uniqueKey ?? null;
    return {
      action: input.action,
      data: input.data ?? {},
      priority: input.priority ?? 0,
      runAt: Math.max(now, input.runAt ?? now + (input.delayMs ?? 0)),
      maxAttempts: input.maxAttempts ?? handler.maxAttempts ?? this.options.defaultMaxAttempts,
      uniqueKey,
      uniqueUntil:
        uniqueKey === null
          ? null
          : now + (input.uniqueForMs ?? this.options.uniqueWindowMs ?? UNIQUE_WINDOW_MS_DEFAULT),
      concurrencyKey: input.concurrencyKey ?? null,
      createdAt: now,
      traceparent: stored.traceparent,
      tracestate: stored.tracestate,
      ...graphOf(input),
    };
  }

  /** Resolves once the task is committed. */
  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    if (input.dependsOn?.some((ref) => typeof ref === 'number'))
      throw new QueueError(
        'TQ_ERR_VALIDATION',
        'depends_on: a number refers to an earlier item of a batch; POST /tasks takes task ids',
      );
    const tracer = activeTracer();
    if (!tracer) return this.enqueueOne(this.prepare(input));
    const task = this.prepare(input);
    const [result] = await tracedEnqueue(tracer, [task.action], input.trace, (stored) =>
      this.enqueueOne({ ...task, ...stored }).then((r) => [r]),
    );
    return result as EnqueueResult;
  }

  private async enqueueOne(task: NewTask): Promise<EnqueueResult> {
    // A task with dependencies is inserted on its own: an unknown dependency fails its request
    // alone, never the other requests of a group commit.
    if (hasGraph(task)) return (await this.insertMany([task]))[0] as EnqueueResult;
    const result = checkReplay(task, await this.inserts.add(task));
    if (result.inserted) this.emit('enqueued', [result.task]);
    return result;
  }

  /**
   * All tasks, made by prepare(), in one transaction: all are stored or none. `trace` is the
   * batch's producer context (one enqueue span covers the batch).
   */
  async enqueueMany(tasks: NewTask[], trace?: TraceHeaders): Promise<EnqueueResult[]> {
    const tracer = activeTracer();
    if (!tracer) {
      const stored = passThrough(trace);
      return this.insertMany(stored.traceparent === null ? tasks : tasks.map((t) => ({ ...t, ...stored })));
    }
    return tracedEnqueue(
      tracer,
      tasks.map((t) => t.action),
      trace,
      (stored: StoredTraceContext) => this.insertMany(tasks.map((t) => ({ ...t, ...stored }))),
    );
  }

  private async insertMany(tasks: NewTask[]): Promise<EnqueueResult[]> {
    const results = await this.store(tasks);
    const checked = results.map((result, i) => checkReplay(tasks[i] as NewTask, result));
    const inserted = checked.filter((r) => r.inserted).map((r) => r.task);
    if (inserted.length > 0) this.emit('enqueued', inserted);
    return checked;
  }

  async get(id: string): Promise<TaskRecord | null> {
    return this.driver.getTask({ id });
  }

  /**
   * The task's dependencies, dependents and children, up to GRAPH_LIMIT of each (with how many
   * there are, counted up to GRAPH_COUNT_MAX), and the task whose handler enqueued it.
   */
  async graph(task: TaskRecord): Promise<TaskGraph & { parent: GraphNode | null }> {
    const [graph, parent] = await Promise.all([
      this.driver.getTaskGraph({ task, limit: GRAPH_LIMIT, countMax: GRAPH_COUNT_MAX }),
      task.parentId === null ? null : this.driver.getTask({ id: task.parentId }),
    ]);
    const node = parent && {
      id: parent.id,
      action: parent.action,
      status: parent.status,
      pendingDeps: parent.pendingDeps,
    };
    return { ...graph, parent: node };
  }

  /** The children of task `id` (tasks its handler enqueued), oldest first. */
  async children(id: string, limit = 1000): Promise<TaskRecord[]> {
    return this.driver.listChildren({ id, limit });
  }

  /** Resolves when the database answers (health checks). */
  async ping(): Promise<void> {
    await this.driver.ping();
  }

  /**
   * `task` now and again after each of its changes, until it finishes, `signal` aborts or the
   * queue stops watching; at least every `idleMs` even when nothing changed (for keep-alives).
   */
  async *follow(task: TaskRecord, idleMs: number, signal: AbortSignal): AsyncGenerator<TaskRecord> {
    let current: TaskRecord | null = task;
    while (current && !signal.aborted) {
      yield current;
      if (isFinished(current.status) || this.watcher.closed) return;
      await this.watcher.nextChange(current.id, idleMs, signal);
      current = await this.driver.getTask({ id: current.id });
    }
  }

  /** Calls `listener` whenever this process sees tasks queued, changed or asked to cancel. */
  onChange(listener: () => void): Unsubscribe {
    const unsubscribes = (['tasksQueued', 'tasksChanged', 'cancelRequested'] as const).map((event) =>
      this.driver.on(event, listener),
    );
    return () => unsubscribes.forEach((unsubscribe) => unsubscribe());
  }

  /** Listens for task changes now, so the first long-poll does not wait on a LISTEN being set up. */
  startWatching(): void {
    this.watcher.start();
  }

  /** Ends every long-poll and event stream at once (shutdown), so the server can close. */
  stopWatching(): void {
    this.watcher.close();
  }

  /**
   * The task once it is finished, or as it is when `timeoutMs` runs out (or `signal` aborts).
   * Woken by the task's own change, not by polling.
   */
  async waitForFinish(id: string, timeoutMs: number, signal?: AbortSignal): Promise<TaskRecord | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const task = await this.driver.getTask({ id });
      const left = deadline - Date.now();
      if (!task || isFinished(task.status) || left <= 0 || signal?.aborted || this.watcher.closed)
        return task;
      await this.watcher.nextChange(id, left, signal);
    }
  }

  async list(input: ListInput): Promise<TaskPage> {
    const beforeSeq = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    // One extra row tells whether another page exists without a count query.
    const { status, action, filter } = input;
    const found = await this.driver.findTasks({ status, action, filter, beforeSeq, limit: input.limit + 1 });
    const tasks = found.tasks.slice(0, input.limit);
    const last = tasks[tasks.length - 1];
    const next =
      found.tasks.length > input.limit && last
        ? encodeCursor(last.seq)
        : found.continueBelow !== null
          ? encodeCursor(found.continueBelow)
          : null;
    return { tasks, nextCursor: next, scans: found.scans };
  }

  async cancel(id: string): Promise<TaskRecord> {
    const { outcome, task } = await this.driver.cancelTask({ id, now: Date.now() });
    if (outcome === 'not_found' || !task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${id} not found`);
    if (outcome === 'already_finished') {
      throw new QueueError('TQ_ERR_CONFLICT', `task ${id} is ${task.status} and cannot be cancelled`);
    }
    return task;
  }

  async retry(id: string): Promise<TaskRecord> {
    const { outcome, task } = await this.driver.retryTask({ id, now: Date.now() });
    if (outcome === 'not_found' || !task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${id} not found`);
    if (outcome === 'not_retryable') {
      throw new QueueError(
        'TQ_ERR_CONFLICT',
        `task ${id} is ${task.status}; only failed or cancelled tasks can be retried`,
      );
    }
    this.emit('retried', task);
    return task;
  }

  /** Live nodes and those gone in the last hour, with the no-live-worker warning (nodes.ts). */
  async nodes(now = Date.now()): Promise<NodesReport> {
    return nodesReport(this.driver, now);
  }

  async counts(): Promise<TaskCounts> {
    return this.driver.countTasks();
  }

  async throughput(sinceMs: number): Promise<ThroughputPoint[]> {
    return this.driver.throughput({ since: sinceMs });
  }

  // The operator's console (queue/actions.ts, queue/schedules.ts, docs/operations.md).

  /** From its answer on, no node claims the action's tasks; running ones finish. */
  async pauseAction(action: string): Promise<ActionPause> {
    return this.driver.pauseAction({ action, now: Date.now() });
  }

  async resumeAction(action: string): Promise<void> {
    await this.driver.resumeAction({ action });
  }

  async pausedActions(): Promise<ActionPause[]> {
    return this.driver.listPausedActions();
  }

  async actionStats(since: number): Promise<ActionStatsRead> {
    return this.driver.readActionStats({ since });
  }

  /** The actions with a handler of their own here (the fallback answers the others). */
  registeredActions(): string[] {
    return this.registry.actions();
  }

  handlerOf(action: string): HandlerDefinition | undefined {
    return this.registry.all().find((h) => h.action === action);
  }

  /** The flow-control limits this process applies, as the worker pool gathers them. */
  actionLimits(): ActionLimits[] {
    return actionLimitsOf(this.registry.all(), this.options.rateLimits);
  }

  async scheduleStates(): Promise<ScheduleState[]> {
    return this.driver.listScheduleStates();
  }

  async setSchedulePaused(name: string, paused: boolean): Promise<ScheduleState> {
    return this.driver.setSchedulePaused({ name, paused, now: Date.now() });
  }

  async recordScheduleRun(name: string, at: number, taskId: string): Promise<void> {
    await this.driver.recordScheduleRun({ name, at, taskId });
  }

  /** Waits for group commits still in flight and wakes every waiter (shutdown). */
  async close(): Promise<void> {
    await this.inserts.drain();
    this.watcher.close();
  }
}
