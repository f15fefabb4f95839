/**
 * The storage seam. Everything the queue needs from a database, in queue words: no connection,
 * statement or transaction type crosses this file, so the queue core, the worker pool and the API
 * run unchanged on SQLite and PostgreSQL. Every method that changes state runs in one transaction.
 * Times are epoch milliseconds. test/contract/driver-contract.ts is the behaviour every driver owes.
 */
import type { ActionMinute, ActionPause } from '../core/actions.js';
import type { ActionLimits, LimitedClaim } from '../core/flow.js';
import type { TaskFilter } from '../core/filter.js';
import type { BackoffPolicy } from '../core/retry.js';
import type {
  AttemptOutcome,
  JsonObject,
  JsonText,
  JsonValue,
  NewTask,
  TaskRecord,
  TaskStatus,
} from '../core/task.js';

export interface DriverCapabilities {
  /** Other processes learn about new tasks at once (PostgreSQL LISTEN/NOTIFY); otherwise they poll. */
  crossProcessNotify: boolean;
  /** Many processes may claim concurrently without blocking each other (SKIP LOCKED). */
  skipLocked: boolean;
  /**
   * The statuses whose tasks of one action a list walks by index (`?status=&action=` reads no
   * other rows); with any other status the action is checked on the status's walk (core/filter.ts).
   */
  actionIndexedStatuses: readonly TaskStatus[];
}

/** Events a driver announces after the change is committed. */
export interface DriverEvents {
  /**
   * New or re-queued tasks may be claimable. Where they sort, for a claim that starts where the
   * last one ended (the PostgreSQL driver's claim floor): `earliestRunAt`, the earliest run_at of
   * newly inserted ones; `requeued`, some were queued again (released, retried, rescued,
   * unblocked, resumed, retried by an operator) and may sort anywhere before tasks claimed since.
   */
  tasksQueued: { count: number; earliestRunAt?: number; requeued?: true };
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
  /**
   * A worker of this process takes some of the tasks as they are stored (LocalTaker in
   * queue/queue.ts): `take[i]` inserts `tasks[i]` claimed by `owner` at `now` (running, attempt 1,
   * under a lease of `leaseMs`), as a claim would leave it, unless its action is paused (then it
   * is inserted queued). Only plain tasks: no dependencies or parent, no idempotency key.
   */
  claim?: InsertClaim;
}
export interface InsertClaim {
  owner: string;
  leaseMs: number;
  take: readonly boolean[];
  /** The claim's time (the worker's clock). */
  now: number;
}
/**
 * One entry per input task, in order: the task as accepted. `inserted` is false when an
 * idempotency key matched. `claimed`: the same commit claimed it for InsertTasksParams.claim, so
 * the row is what `asClaimed(task, claim)` (core/task.ts) says.
 */
export interface InsertedTask {
  task: TaskRecord;
  inserted: boolean;
  claimed?: boolean;
}

export interface ListTasksParams {
  status?: TaskStatus;
  action?: string;
  limit: number;
  /** Only tasks older (lower `seq`) than this one: keyset pagination, newest first. */
  beforeSeq?: number;
  /** The filter grammar's conditions (core/filter.ts); `status` and `action` above add to them. */
  filter?: TaskFilter;
  /** Only tasks at or below this seq (a bulk operation's snapshot of the table). */
  maxSeq?: number;
  /** Rows a scan examines at most (shared/list-filter.ts); default SCAN_WINDOW_DEFAULT. */
  scanWindow?: number;
}

/** A page of `findTasks`, newest first. */
export interface FoundTasks {
  tasks: TaskRecord[];
  /** The filter has conditions no index answers: the page is a bounded scan window. */
  scans: boolean;
  /**
   * Scanning, the window ran out before `limit` tasks matched: continue below this seq (the
   * last one examined). Null when the page is full or nothing is left below.
   */
  continueBelow: number | null;
}

/** Matches counted within one scan window. */
export interface MatchCount {
  count: number;
  /** False when the window ran out first: there may be more. */
  exact: boolean;
}

export const BULK_OPS = ['retry', 'cancel', 'delete'] as const;
export type BulkOp = (typeof BULK_OPS)[number];
export type OperationStatus = 'running' | 'completed';

/** A bulk operation (POST /tasks/bulk) as stored: worked chunk by chunk under a lease. */
export interface OperationRecord {
  id: string;
  op: BulkOp;
  /** The filter in the grammar's pairs (core/filter.ts filterToParams). */
  filter: Record<string, string>;
  status: OperationStatus;
  /** Tasks that match; an estimate (at least this many) until `matchedExact`. */
  matched: number;
  matchedExact: boolean;
  /** Tasks the operation changed. */
  done: number;
  /** Matching tasks it left as they were (a completed task is not cancelled, a running one not deleted). */
  skipped: number;
  /** Chunks that failed (and were tried again), with the last error. */
  errors: number;
  lastError: string | null;
  /** Only tasks at or below this seq: the newest task when it was created. */
  maxSeq: number;
  /** The next chunk starts below this seq; null: at `maxSeq`. */
  cursor: number | null;
  idempotencyKey: string | null;
  /** Who asked (the token's name, when tokens have names); null when unknown. */
  createdBy: string | null;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface CreateOperationParams {
  id: string;
  op: BulkOp;
  filter: Record<string, string>;
  /** Tells two requests apart: op and canonical filter. A running operation with it is answered instead. */
  requestKey: string;
  idempotencyKey: string | null;
  createdBy: string | null;
  matched: number;
  matchedExact: boolean;
  now: number;
}

export interface StepOperationParams {
  id: string;
  owner: string;
  now: number;
  leaseMs: number;
  /** Most tasks changed in this step (one transaction). */
  chunk: number;
  scanWindow?: number;
  /** Told, after the step commits, the action of each task it put back in the queue (op retry). */
  onRetried?: (actions: string[]) => void;
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
  /** How the attempt ended, for its history; absent: `error`. */
  ended?: Exclude<AttemptOutcome, 'completed' | 'lease_lost'>;
  /** The thrown error's stack, kept in the attempt's history (cut at ATTEMPT_STACK_MAX). */
  stack?: string | null;
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
  /** Its dependencies not yet completed (what a blocked task waits for). */
  pendingDeps: number;
}

/**
 * The neighbours of one task (each list at most `limit` long, in insertion order), and how many
 * of each there are: the length of the list when it is not full, else counted (index-only) up
 * to `countMax`, so a task with a million children costs no more to read than one with ten.
 */
export interface TaskGraph {
  /** The tasks it depends on (`depends_on`, or the children it waits for). */
  dependsOn: GraphNode[];
  /** The tasks that depend on it. */
  dependents: GraphNode[];
  /** The tasks its handler enqueued. */
  children: GraphNode[];
  counts: { dependsOn: number; dependents: number; children: number };
}

/** What getTaskGraph reads: `limit` nodes of each list, counts up to `countMax`. */
export interface GetTaskGraphParams {
  task: TaskRecord;
  limit: number;
  countMax: number;
}

/**
 * How a handler's wait for its children ended: `blocked` until they finish, `queued` at once
 * (they all had), `failed` (a child failed and the task does not run on dependency failure, or
 * the wait would close a cycle), `lease_lost` (the task is no longer this worker's: nothing written).
 */
export type WaitOutcome = 'blocked' | 'queued' | 'failed' | 'lease_lost';
/** What GET /actions reads beside the counters (migration 0011): bounded by the actions, not the tasks. */
export interface ActionStatsRead {
  /** The per-action ring's minutes from the one holding `since`, with any finish. */
  minutes: ActionMinute[];
  /** Per action with queued tasks, when its oldest queued task was created (epoch ms). */
  oldestQueued: { action: string; createdAt: number }[];
}

/** A schedule's state kept in the database (migration 0011); absent fields: never set. */
export interface ScheduleState {
  name: string;
  /** Epoch ms; null when not paused. */
  pausedAt: number | null;
  /** The tick (or run-now) last queued, epoch ms. */
  lastRunAt: number | null;
  lastTaskId: string | null;
}

/** What a node says of itself at each heartbeat (GET /nodes shows it). */
export interface NodeInfo {
  /** Unique per process; the lease owner of the tasks it runs. */
  id: string;
  host: string;
  pid: number;
  role: 'all' | 'api' | 'worker';
  version: string;
  startedAt: number;
  /** Its heartbeat period (ms): a node that misses three is gone. */
  heartbeatMs: number;
  /** Handlers it may run at once; 0 on an API-only node. */
  concurrency: number;
  running: number;
  buffered: number;
  /** Ids of the tasks it runs now (at most NODE_TASKS_MAX). */
  tasks: string[];
}

/** A node's row: what it said at its last heartbeat, and when. */
export interface NodeRecord extends NodeInfo {
  heartbeatAt: number;
  /** When it stopped gracefully; null while it runs (or since it vanished). */
  stoppedAt: number | null;
}

export interface HeartbeatNodeParams {
  node: NodeInfo;
  now: number;
  /** Rows of nodes last heard of before this are deleted in the same write. */
  pruneBefore: number;
}

/** One operator action as the audit log keeps it (migration 0012, docs/security.md). */
export interface NewAuditEntry {
  /** Epoch ms of the answer. */
  at: number;
  /** The token's name; null when the service runs without tokens. */
  token: string | null;
  method: string;
  /** The route's pattern, `/tasks/:id/retry`. */
  route: string;
  /** What was done, `tasks.retry`, `bulk.delete`. */
  action: string;
  /** The task id, action, schedule or operation id acted on; null for none. */
  target: string | null;
  /** What the route adds: a bulk operation's filter, matched count and dry_run. */
  detail: JsonObject | null;
  /** The HTTP status answered. */
  status: number;
}

export interface AuditRecord extends NewAuditEntry {
  /** Ascending in insertion order: the listing's order and cursor. */
  seq: number;
}

export interface ListAuditParams {
  /** Only entries below this seq (the page cursor). */
  beforeSeq?: number;
  token?: string;
  action?: string;
  limit: number;
}

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
  getTaskGraph(params: GetTaskGraphParams): Promise<TaskGraph>;
  /** The children of task `id` (enqueued by its handler), oldest first, up to `limit`. */
  listChildren(params: { id: string; limit: number }): Promise<TaskRecord[]>;
  /** Registers the node or records its heartbeat (an upsert), and prunes long-gone nodes. */
  heartbeatNode(params: HeartbeatNodeParams): Promise<void>;
  insertTasks(params: InsertTasksParams): Promise<InsertedTask[]>;
  /** Appends an audit entry; durable once resolved. */
  insertAuditEntry(params: { entry: NewAuditEntry }): Promise<void>;
  /** Audit entries newest first (below `beforeSeq`), by token and action when given; index-backed. */
  listAuditEntries(params: ListAuditParams): Promise<AuditRecord[]>;
  /** Deletes up to `limit` audit entries written before `before`; returns how many. */
  pruneAuditEntries(params: { before: number; limit: number }): Promise<number>;
  /** Actions no claim takes, by name. */
  listPausedActions(): Promise<ActionPause[]>;
  /** Every schedule with a stored state, by name. */
  listScheduleStates(): Promise<ScheduleState[]>;
  listTasks(params: ListTasksParams): Promise<TaskRecord[]>;
  /** Every node heard of (heartbeat or stop) at or after `since`, oldest start first. */
  listNodes(params: { since: number }): Promise<NodeRecord[]>;
  /** A page of tasks that match, newest first, never reading more than one scan window. */
  findTasks(params: ListTasksParams): Promise<FoundTasks>;
  /** Counts the matches within one scan window of `params.scanWindow` rows. */
  countMatching(params: ListTasksParams): Promise<MatchCount>;
  /**
   * Stores a bulk operation, or answers the one already stored under its idempotency key or
   * running with the same request key (`created: false`); both in one transaction.
   */
  createOperation(params: CreateOperationParams): Promise<{ operation: OperationRecord; created: boolean }>;
  getOperation(params: { id: string }): Promise<OperationRecord | null>;
  /** Takes the lease of one running operation whose lease is free or expired. */
  claimOperation(params: { owner: string; now: number; leaseMs: number }): Promise<OperationRecord | null>;
  /**
   * One chunk of an operation in one transaction: its next matching tasks changed, its progress
   * and cursor moved, its lease renewed (finished when nothing is left). Null when `owner` no
   * longer holds its lease (another node took it over) or it is finished.
   */
  stepOperation(params: StepOperationParams): Promise<OperationRecord | null>;
  /**
   * Gives up `owner`'s lease of a running operation (a graceful stop between steps), so another
   * node's runner takes it over at once instead of when the lease would have expired.
   */
  releaseOperation(params: { id: string; owner: string }): Promise<void>;
  /** Counts a failed step (kept under the lease, tried again). */
  recordOperationError(params: { id: string; owner: string; error: string; now: number }): Promise<void>;
  migrate(params?: { onApplied?: (name: string) => void }): Promise<MigrateResult>;
  /**
   * From its commit on, no claim takes a task of `action` (claims already made keep theirs).
   * Durable; idempotent: pausing again keeps the first pause's time.
   */
  pauseAction(params: { action: string; now: number }): Promise<ActionPause>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  readActionStats(params: { since: number }): Promise<ActionStatsRead>;
  /** Records a schedule's run (a tick or a run-now) if it is later than the last one recorded. */
  recordScheduleRun(params: { name: string; at: number; taskId: string }): Promise<void>;
  /** How many finished tasks `pruneTasks` would delete (for progress reporting). */
  countPrunableTasks(params: { finishedBefore: FinishedBefore }): Promise<number>;
  /** Deletes up to `limit` finished tasks that finished before their status's cut-off; returns how many. */
  pruneTasks(params: { finishedBefore: FinishedBefore; limit: number }): Promise<number>;
  releaseTasks(params: ReleaseTasksParams): Promise<void>;
  rescueExpiredLeases(params: RescueParams): Promise<RescueResult>;
  /** Lets claims take `action` again and wakes workers (announced as tasksQueued); idempotent. */
  resumeAction(params: { action: string }): Promise<void>;
  retryTask(params: { id: string; now: number }): Promise<{ outcome: RetryOutcome; task: TaskRecord | null }>;
  /** Marks a node stopped (a graceful stop): it is listed as gone at once. */
  stopNode(params: { id: string; now: number }): Promise<void>;
  setProgress(params: LeaseRef & { progress: number; message: string | null }): Promise<void>;
  /** Pauses (an earlier pause keeps its time) or resumes a schedule; durable. */
  setSchedulePaused(params: { name: string; paused: boolean; now: number }): Promise<ScheduleState>;
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
