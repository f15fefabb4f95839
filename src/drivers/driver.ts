/**
 * The storage seam. Everything the queue needs from a database, in queue words: no connection,
 * statement or transaction type crosses this file, so the queue core, the worker pool and the API
 * run unchanged on SQLite and PostgreSQL. Every method that changes state runs in one transaction.
 * Times are epoch milliseconds. test/contract/driver-contract.ts is the behaviour every driver owes.
 */
import type { ActionLimits, LimitedClaim } from '../core/flow.js';
import type { BackoffPolicy } from '../core/retry.js';
import type { JsonText, JsonValue, NewTask, TaskRecord, TaskStatus } from '../core/task.js';

export interface DriverCapabilities {
  /** Other processes learn about new tasks at once (PostgreSQL LISTEN/NOTIFY); otherwise they poll. */
  crossProcessNotify: boolean;
  /** Many processes may claim concurrently without blocking each other (SKIP LOCKED). */
  skipLocked: boolean;
}

/** Events a driver announces after the change is committed. */
export interface DriverEvents {
  /** New or re-queued tasks may be claimable. */
  tasksQueued: { count: number };
  /** Tasks reached a finished status, or changed in a way a waiting client should see. */
  tasksChanged: { ids: string[] };
  /** A client asked to cancel running tasks; their workers should abort them. */
  cancelRequested: { ids: string[] };
}
export type DriverEventName = keyof DriverEvents;
export type Unsubscribe = () => void;

/** The driver gives each inserted task its id (a UUID v4) and its seq. */
/**
 * A task's `dependsOn` refers to existing tasks (an unknown id is TQ_ERR_VALIDATION) or to
 * earlier tasks of the same call (by index); the task is `blocked` while any is unfinished.
 */
export interface InsertTasksParams {
  tasks: NewTask[];
  now: number;
}
/** One entry per input task, in order. `inserted` is false when an idempotency key matched. */
export interface InsertedTask {
  task: TaskRecord;
  inserted: boolean;
}

export interface ListTasksParams {
  status?: TaskStatus;
  action?: string;
  limit: number;
  /** Only tasks older (lower `seq`) than this one: keyset pagination, newest first. */
  beforeSeq?: number;
}

export interface ClaimTasksParams {
  owner: string;
  limit: number;
  now: number;
  leaseMs: number;
  /** Actions not to claim now (they are at their per-action concurrency limit). */
  excludeActions?: string[];
  /**
   * Rate limits and per-key caps of the actions that have them (core/flow.ts), held across
   * every process in the same transaction as the claim. Absent or empty: the plain claim.
   */
  limits?: ActionLimits[];
  /** Told, before the claim resolves, which limited actions had ready tasks left queued, and why. */
  onLimited?: (limited: LimitedClaim[]) => void;
}

/** The worker's proof that it still holds the task: owner plus the attempt it claimed. */
export interface LeaseRef {
  id: string;
  /** The task's position in insertion order (SQLite finds the row by it). */
  seq: number;
  owner: string;
  attempt: number;
}

/** An outcome carries when its handler started, so the start needs no write of its own. */
interface Started {
  /** When the handler started (`started_at`); absent for a task that never started. */
  startedAt?: number;
}

export interface Completion extends LeaseRef, Started {
  /** The worker's result comes serialised (JsonText); store it with jsonTextOf. */
  result: JsonValue | JsonText;
}

export interface Failure extends LeaseRef, Started {
  error: string;
  /** retry: back to `queued` at `retryAt`; failed/cancelled: finished. */
  outcome: 'retry' | 'failed' | 'cancelled';
  retryAt?: number;
}

export interface CompleteTasksParams {
  completions: Completion[];
  now: number;
}
export interface FailTasksParams {
  failures: Failure[];
  now: number;
}

export interface ExtendLeasesParams {
  owner: string;
  /**
   * The tasks to renew: those the worker still holds or has a result waiting for. Any other task
   * of the owner (one it failed to give back, a result it dropped) is left to expire and be rescued.
   */
  seqs: number[];
  now: number;
  leaseMs: number;
  /**
   * Tasks among `seqs` whose handlers have started, with when: their `started_at` is set if it
   * is not yet, so a long-running task shows its start before its result is written.
   */
  started?: { seq: number; startedAt: number }[];
}
/** Tasks the owner still holds after the renewal; a held task missing here has lost its lease. */
export interface HeldTask {
  id: string;
  cancelRequested: boolean;
}

export interface ReleaseTasksParams {
  tasks: LeaseRef[];
}

export interface RescueParams {
  now: number;
  /**
   * Backoff for the tasks sent back to `queued`: their `run_at` becomes `now` plus
   * `backoffDelayMs(attempts, backoff)` of core/retry.ts, jitter included (`attempts` counts the
   * attempt whose lease expired), as `decideRetry` says for a `lease_expired` attempt. Without
   * it they are claimable at once (`run_at = now`). Finished tasks get `run_at = now` either way.
   */
  backoff?: BackoffPolicy;
}

export interface RescueResult {
  requeued: string[];
  failed: string[];
}

export type CancelOutcome = 'cancelled' | 'cancel_requested' | 'already_finished' | 'not_found';
export type RetryOutcome = 'requeued' | 'not_retryable' | 'not_found';

export interface TaskCounts {
  byStatus: Record<TaskStatus, number>;
  byAction: { action: string; status: TaskStatus; count: number }[];
  oldestQueuedAt: number | null;
}

export interface ThroughputPoint {
  /** Start of the minute, epoch ms. */
  minute: number;
  completed: number;
  failed: number;
}

/** Per finished status, an epoch-ms cut-off: tasks that finished earlier may be pruned. */
export type FinishedBefore = Record<'completed' | 'failed' | 'cancelled', number>;

/** A task as a graph shows it: a node with its status. */
export interface GraphNode {
  id: string;
  action: string;
  status: TaskStatus;
}

/** The neighbours of one task (each list at most `limit` long, in insertion order). */
export interface TaskGraph {
  /** The tasks it depends on (`depends_on`, or the children it waits for). */
  dependsOn: GraphNode[];
  /** The tasks that depend on it. */
  dependents: GraphNode[];
  /** The tasks its handler enqueued. */
  children: GraphNode[];
}

/**
 * How a handler's wait for its children ended: `blocked` until they finish, `queued` at once
 * (they all had), `failed` (a child failed and the task does not run on dependency failure, or
 * the wait would close a cycle), `lease_lost` (the task is no longer this worker's: nothing written).
 */
export type WaitOutcome = 'blocked' | 'queued' | 'failed' | 'lease_lost';

export interface MigrateResult {
  applied: string[];
  current: number;
}

export interface QueueDriver {
  readonly capabilities: DriverCapabilities;
  /** A short description for logs, e.g. `sqlite ./data/tasks.db`; never branch on it. */
  readonly description: string;

  cancelTask(params: {
    id: string;
    now: number;
  }): Promise<{ outcome: CancelOutcome; task: TaskRecord | null }>;
  claimTasks(params: ClaimTasksParams): Promise<TaskRecord[]>;
  completeTasks(params: CompleteTasksParams): Promise<void>;
  countTasks(): Promise<TaskCounts>;
  extendLeases(params: ExtendLeasesParams): Promise<HeldTask[]>;
  failTasks(params: FailTasksParams): Promise<void>;
  getTask(params: { id: string }): Promise<TaskRecord | null>;
  /** The task's dependencies, dependents and children (index-backed, `limit` each). */
  getTaskGraph(params: { task: TaskRecord; limit: number }): Promise<TaskGraph>;
  /** The children of task `id` (enqueued by its handler), oldest first, up to `limit`. */
  listChildren(params: { id: string; limit: number }): Promise<TaskRecord[]>;
  insertTasks(params: InsertTasksParams): Promise<InsertedTask[]>;
  listTasks(params: ListTasksParams): Promise<TaskRecord[]>;
  migrate(params?: { onApplied?: (name: string) => void }): Promise<MigrateResult>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** How many finished tasks `pruneTasks` would delete (for progress reporting). */
  countPrunableTasks(params: { finishedBefore: FinishedBefore }): Promise<number>;
  /** Deletes up to `limit` finished tasks that finished before their status's cut-off; returns how many. */
  pruneTasks(params: { finishedBefore: FinishedBefore; limit: number }): Promise<number>;
  releaseTasks(params: ReleaseTasksParams): Promise<void>;
  rescueExpiredLeases(params: RescueParams): Promise<RescueResult>;
  retryTask(params: { id: string; now: number }): Promise<{ outcome: RetryOutcome; task: TaskRecord | null }>;
  setProgress(params: LeaseRef & { progress: number; message: string | null }): Promise<void>;
  throughput(params: { since: number }): Promise<ThroughputPoint[]>;
  /**
   * Ends the running attempt of a handler that waits for its children: in one transaction the
   * children become its dependencies and it is `blocked` until they finish (docs/workflows.md).
   */
  waitForChildren(
    params: LeaseRef & { now: number },
  ): Promise<{ outcome: WaitOutcome; error: string | null }>;

  on<E extends DriverEventName>(event: E, listener: (payload: DriverEvents[E]) => void): Unsubscribe;
  close(): Promise<void>;
}
