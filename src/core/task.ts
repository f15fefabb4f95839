/**
 * Terminology (docs/glossary.md uses the same words):
 *
 * - task: one unit of work, `{action, data}`, stored as a row the moment it is accepted.
 * - action: the name of the handler that runs a task (`uppercase`, `sum`, ...).
 * - status: where a task is in its life; see `TaskStatus` and docs/architecture.md (States).
 * - claim: a worker takes queued tasks and marks them `running` under a lease.
 * - hand-off: a task enqueued in a process whose worker is idle and has room is inserted
 *   already claimed by that worker, in the same commit (`asClaimed`), instead of claimed after.
 * - lease: owner + expiry on a running task; renewed by heartbeats while the worker lives.
 *   A lease that expires (the worker died or stalled) returns the task to `queued`.
 * - prefetch: tasks claimed ahead of time and waiting in a worker's memory (`running`, with
 *   `claimed_at` set and `started_at` null until the handler starts).
 * - ack: a handler's result, written with status `completed` in one transaction.
 * - nack: a handler's error; the task is retried after a backoff or ends `failed`.
 * - attempt: one claim of a task; `attempts` counts them, `max_attempts` bounds them.
 * - attempt history: a task's finished attempts (outcome, node, times, error, stack), kept on
 *   the task by the statement that ends each one, at most `--attempt-history` of them.
 * - node: one taskq process (role all, api or worker); its id is the lease owner of the tasks it
 *   runs, and it heartbeats its row in `taskq_nodes` (docs/operations.md).
 * - group commit: many concurrent writes (enqueues, acks) committed in one transaction.
 * - dependency: a task another one waits for (`depends_on`); the waiting task is its dependent,
 *   `blocked` until every dependency has completed (docs/workflows.md).
 * - child: a task a handler enqueued with `ctx.enqueue`; its parent may wait for its children
 *   and resume with their results.
 */

export const TASK_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'blocked'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Statuses from which a task never moves on its own. */
export const FINISHED_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

export function isFinished(status: TaskStatus): boolean {
  return FINISHED_STATUSES.includes(status);
}

/** A count for every status. */
export type StatusCounts = Record<TaskStatus, number>;

/** Every status at zero, the start of any tally by status. */
export function zeroCounts(): StatusCounts {
  return Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

/** Statuses an operator may retry (back to `queued`); the drivers' retryTask queries are built from it. */
export const RETRYABLE_STATUSES: readonly TaskStatus[] = ['failed', 'cancelled'];

/** Statuses an operator may cancel: every one that is not finished. */
export const CANCELLABLE_STATUSES: readonly TaskStatus[] = TASK_STATUSES.filter((s) => !isFinished(s));

/**
 * The statuses each bulk operation changes (POST /tasks/bulk, the drivers' bulk statements); a
 * matching task of another status is skipped. A bulk cancel cancels queued tasks and asks running
 * ones to stop; a bulk delete takes every task that is not running.
 */
export const BULK_STATUSES: Readonly<Record<'retry' | 'cancel' | 'delete', readonly TaskStatus[]>> = {
  retry: RETRYABLE_STATUSES,
  cancel: ['queued', 'running'],
  delete: TASK_STATUSES.filter((s) => s !== 'running'),
};

/** What a dependent does when a dependency fails for good or is cancelled: fail with it, or run anyway. */
export const DEPENDENCY_FAILURE_POLICIES = ['fail', 'run'] as const;
export type DependencyFailurePolicy = (typeof DEPENDENCY_FAILURE_POLICIES)[number];

/** A dependency of a new task: an existing task's id, or an earlier task of the same insert (its index). */
export type DependencyRef = { id: string } | { index: number };

/** The error a dependent is failed (or cancelled) with when `dependency` ends that way. */
export function dependencyError(dependency: {
  id: string;
  status: TaskStatus;
  error: string | null;
}): string {
  return dependency.status === 'cancelled'
    ? `dependency ${dependency.id} was cancelled`
    : `dependency ${dependency.id} failed: ${dependency.error ?? ''}`;
}

/** A JSON value as stored in `data` and `result`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * A JSON value already serialised: a handler's result is turned into text once, by the executor,
 * and the drivers store that text as it is instead of serialising the value a second time.
 */
export class JsonText {
  constructor(readonly text: string) {}
}

/** The JSON text of `value` for storage; JsonText is stored as it is. */
export function jsonTextOf(value: JsonValue | JsonText): string {
  return value instanceof JsonText ? value.text : JSON.stringify(value ?? null);
}

/**
 * How one attempt ended, as its history records it: `completed` (the handler's result was
 * written), `error` (it threw, or its result could not be stored), `timeout` (aborted after its
 * timeout), `lease_lost` (its worker stopped renewing the lease and the rescuer took the task
 * back) or `cancelled` (a cancel request aborted it).
 */
export const ATTEMPT_OUTCOMES = ['completed', 'error', 'timeout', 'lease_lost', 'cancelled'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/**
 * One finished attempt, as the drivers store it in the task's `attempt_history` (a JSON array,
 * oldest first, appended by the same statement that ends the attempt). Times are epoch ms.
 */
export interface AttemptRecord {
  /** The task's `attempts` when it ran: 1 for the first run (an operator retry counts from 1 again). */
  attempt: number;
  /** The node that ran it (its lease owner; GET /nodes lists nodes by this id). */
  node: string | null;
  claimed_at: number | null;
  /** When its handler started; null when it never started (cancelled in a worker's buffer). */
  started_at: number | null;
  finished_at: number;
  outcome: AttemptOutcome;
  error: string | null;
  stack: string | null;
}

/** Most attempts a task's history keeps by default; older ones are dropped (`--attempt-history`). */
export const ATTEMPT_HISTORY_DEFAULT = 20;
/** Longest error message and stack an attempt keeps (characters); longer ones are cut. */
export const ATTEMPT_ERROR_MAX = 2000;
export const ATTEMPT_STACK_MAX = 4000;

/** A task as the storage drivers return it. Times are epoch milliseconds. */
export interface TaskRecord {
  /** Insertion order; newest first means highest `seq` first. Internal, never shown to clients. */
  seq: number;
  id: string;
  action: string;
  data: JsonObject;
  status: TaskStatus;
  priority: number;
  /** Not claimed before this time: set by delays and by retry backoff. */
  runAt: number;
  attempts: number;
  maxAttempts: number;
  result: JsonValue | null;
  error: string | null;
  progress: number | null;
  progressMessage: string | null;
  uniqueKey: string | null;
  /** Tasks of one key are capped by their action's `concurrencyPerKey` (docs/flow-control.md). */
  concurrencyKey: string | null;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
  createdAt: number;
  /** When the current attempt was claimed: the task may wait in a worker's buffer after it. */
  claimedAt: number | null;
  /** When the current attempt's handler started; null while claimed but not started. */
  startedAt: number | null;
  processedAt: number | null;
  /** The producer's trace context (W3C `traceparent`, `tracestate`); null when it had none. */
  traceparent: string | null;
  tracestate: string | null;
  /** The task whose handler enqueued this one (`ctx.enqueue`), or null. */
  parentId: string | null;
  /** Dependencies not yet completed (or settled); a `blocked` task is queued when it reaches 0. */
  pendingDeps: number;
  onDependencyFailure: DependencyFailurePolicy;
  /** Times its handler waited for its children; a resumed run sees more than 0. */
  waits: number;
  /**
   * Its finished attempts, oldest first, at most the driver's bound. Read by getTask (and the
   * operator actions); claims and listings do not read it and leave it empty.
   */
  attemptHistory: AttemptRecord[];
}

/** What a producer supplies; the queue fills in the rest. */
export interface NewTask {
  action: string;
  data: JsonObject;
  priority: number;
  runAt: number;
  maxAttempts: number;
  uniqueKey: string | null;
  /** Until when `uniqueKey` deduplicates (epoch ms); null when there is no key. */
  uniqueUntil: number | null;
  /** See TaskRecord; absent means none. */
  concurrencyKey?: string | null;
  createdAt: number;
  /** The trace context the task continues (docs/tracing.md); null when there is none. */
  traceparent: string | null;
  tracestate: string | null;
  /** Tasks that must complete first (docs/workflows.md); absent or empty: none. */
  dependsOn?: DependencyRef[];
  /** @defaultValue 'fail' */
  onDependencyFailure?: DependencyFailurePolicy;
  /** The running task that enqueues this one (ctx.enqueue). */
  parentId?: string | null;
}

/**
 * Whether the driver must take the dependency path for `task`: it has dependencies, a parent or
 * a policy other than the default (the plain insert leaves those columns at their defaults).
 */
export function hasGraph(task: NewTask): boolean {
  return (
    (task.dependsOn !== undefined && task.dependsOn.length > 0) ||
    (task.parentId ?? null) !== null ||
    task.onDependencyFailure === 'run'
  );
}

/** The record of a task just inserted from `task` as `id` and `seq`: what the database now holds. */
export function newTaskRecord(task: NewTask, { id, seq }: { id: string; seq: number }): TaskRecord {
  return {
    seq,
    id,
    action: task.action,
    data: task.data,
    status: 'queued',
    priority: task.priority,
    runAt: task.runAt,
    attempts: 0,
    maxAttempts: task.maxAttempts,
    result: null,
    error: null,
    progress: null,
    progressMessage: null,
    uniqueKey: task.uniqueKey,
    concurrencyKey: task.concurrencyKey ?? null,
    leaseOwner: null,
    leaseExpiresAt: null,
    cancelRequested: false,
    createdAt: task.createdAt,
    claimedAt: null,
    startedAt: null,
    processedAt: null,
    traceparent: task.traceparent,
    tracestate: task.tracestate,
    parentId: task.parentId ?? null,
    pendingDeps: 0,
    onDependencyFailure: task.onDependencyFailure ?? 'fail',
    waits: 0,
    attemptHistory: [],
  };
}

/** `record` as a claim by `owner` at `now` leaves it: running its first attempt, under a lease. */
export function asClaimed(
  record: TaskRecord,
  { owner, now, leaseMs }: { owner: string; now: number; leaseMs: number },
): TaskRecord {
  return {
    ...record,
    status: 'running',
    attempts: record.attempts + 1,
    leaseOwner: owner,
    leaseExpiresAt: now + leaseMs,
    claimedAt: now,
  };
}

/** Claim order: higher priority first, then earlier `runAt`, then insertion order. */
export const compareClaimOrder = (a: TaskRecord, b: TaskRecord): number =>
  b.priority - a.priority || a.runAt - b.runAt || a.seq - b.seq;
