/**
 * The tasks table as both drivers read it: the same columns under the same names. Only JSON
 * (text in SQLite, json in PostgreSQL) and the cancel flag (0/1 or boolean) come back in each
 * driver's own types, so each passes its decoders and the column-to-field mapping lives here once.
 */
import {
  ATTEMPT_OUTCOMES,
  type AttemptRecord,
  type JsonObject,
  type JsonValue,
  type TaskRecord,
  type TaskStatus,
} from '../../core/task.js';

export interface TaskRow<Json, Flag> {
  seq: number;
  id: string;
  action: string;
  data: Json;
  status: TaskStatus;
  priority: number;
  run_at: number;
  attempts: number;
  max_attempts: number;
  result: Json | null;
  error: string | null;
  progress: number | null;
  progress_message: string | null;
  unique_key: string | null;
  unique_until: number | null;
  concurrency_key: string | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  cancel_requested: Flag;
  created_at: number;
  claimed_at: number | null;
  started_at: number | null;
  processed_at: number | null;
  traceparent: string | null;
  tracestate: string | null;
  parent_id: string | null;
  pending_deps: number;
  has_dependents: Flag;
  dep_failure_runs: Flag;
  waits: number;
  /** Absent where a statement does not read it (claims, listings). */
  attempt_history?: Json | null;
  /** PostgreSQL only: the node of a completion whose history entry is implied (historyOf). */
  completed_by?: string | null;
}

export interface RowDecoders<Json, Flag> {
  json: (value: Json) => JsonValue;
  flag: (value: Flag) => boolean;
}

export function toTaskRecord<Json, Flag>(
  row: TaskRow<Json, Flag>,
  decode: RowDecoders<Json, Flag>,
): TaskRecord {
  return {
    seq: row.seq,
    id: row.id,
    action: row.action,
    data: decode.json(row.data) as JsonObject,
    status: row.status,
    priority: row.priority,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    result: row.result === null ? null : decode.json(row.result),
    error: row.error,
    progress: row.progress,
    progressMessage: row.progress_message,
    uniqueKey: row.unique_key,
    concurrencyKey: row.concurrency_key,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    cancelRequested: decode.flag(row.cancel_requested),
    createdAt: row.created_at,
    claimedAt: row.claimed_at,
    startedAt: row.started_at,
    processedAt: row.processed_at,
    traceparent: row.traceparent,
    tracestate: row.tracestate,
    parentId: row.parent_id,
    pendingDeps: row.pending_deps,
    onDependencyFailure: decode.flag(row.dep_failure_runs) ? 'run' : 'fail',
    waits: row.waits,
    attemptHistory: historyOf(row, decode),
  };
}

/**
 * The history as stored, or the one entry a completion left implied: PostgreSQL's completing ack
 * stores only the node (`completed_by`) when the history was empty, since every other field of
 * the entry is a column of the row (postgres/queries.ts, IMPLIED_COMPLETION says why).
 */
function historyOf<Json, Flag>(row: TaskRow<Json, Flag>, decode: RowDecoders<Json, Flag>): AttemptRecord[] {
  if (row.attempt_history === undefined) return [];
  if (row.attempt_history !== null) return attemptsOf(decode.json(row.attempt_history));
  if (row.status !== 'completed' || typeof row.completed_by !== 'string' || row.processed_at === null) {
    return [];
  }
  return [
    {
      attempt: row.attempts,
      node: row.completed_by,
      claimed_at: row.claimed_at,
      started_at: row.started_at,
      finished_at: row.processed_at,
      outcome: 'completed',
      error: null,
      stack: null,
    },
  ];
}

const numberOr = <T>(value: JsonValue | undefined, fallback: T): number | T =>
  typeof value === 'number' ? value : fallback;
const textOrNull = (value: JsonValue | undefined): string | null =>
  typeof value === 'string' ? value : null;

/**
 * The stored history (written only by the drivers' own statements) read field by field, so a
 * value of the wrong type shows as null rather than reaching a client as something else.
 */
export function attemptsOf(value: JsonValue): AttemptRecord[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((entry): AttemptRecord[] => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return [];
    const outcome = ATTEMPT_OUTCOMES.find((o) => o === entry.outcome) ?? 'error';
    return [
      {
        attempt: numberOr(entry.attempt, 0),
        node: textOrNull(entry.node),
        claimed_at: numberOr(entry.claimed_at, null),
        started_at: numberOr(entry.started_at, null),
        finished_at: numberOr(entry.finished_at, 0),
        outcome,
        error: textOrNull(entry.error),
        stack: textOrNull(entry.stack),
      },
    ];
  });
}

/** The columns a claim returns; the others are what the claim just set. */
export type ClaimedRow<Json, Flag> = Pick<
  TaskRow<Json, Flag>,
  | 'seq'
  | 'id'
  | 'action'
  | 'data'
  | 'priority'
  | 'run_at'
  | 'attempts'
  | 'max_attempts'
  | 'error'
  | 'unique_key'
  | 'concurrency_key'
  | 'cancel_requested'
  | 'created_at'
  | 'traceparent'
  | 'tracestate'
  | 'parent_id'
  | 'waits'
>;

/**
 * The record of a task after a claim set its lease (both drivers' claimTasks return only the
 * columns the claim did not set). Built field by field: a claim is on the drain's hot path, and
 * spreading the row into a full row first showed up in a drain's time (`npm run bench`).
 */
export function claimedRecord<Json, Flag>(
  row: ClaimedRow<Json, Flag>,
  lease: { owner: string; leaseExpiresAt: number; claimedAt: number },
  decode: RowDecoders<Json, Flag>,
): TaskRecord {
  return {
    seq: row.seq,
    id: row.id,
    action: row.action,
    data: decode.json(row.data) as JsonObject,
    status: 'running',
    priority: row.priority,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    result: null,
    error: row.error,
    progress: null,
    progressMessage: null,
    uniqueKey: row.unique_key,
    concurrencyKey: row.concurrency_key,
    leaseOwner: lease.owner,
    leaseExpiresAt: lease.leaseExpiresAt,
    cancelRequested: decode.flag(row.cancel_requested),
    createdAt: row.created_at,
    claimedAt: lease.claimedAt,
    // Set when the handler starts (the worker reports it with the result or a lease renewal).
    startedAt: null,
    processedAt: null,
    traceparent: row.traceparent,
    tracestate: row.tracestate,
    parentId: row.parent_id,
    // A claimed task is running: its dependencies, if it had any, are settled.
    pendingDeps: 0,
    onDependencyFailure: 'fail',
    waits: row.waits,
    // Not read by the claim (a handler has no use for it).
    attemptHistory: [],
  };
}
