/**
 * One step of a bulk operation, as both drivers take it (each inside one transaction, holding
 * the operation's lease): read the next `chunk` matching tasks below the cursor, with the
 * operation's filter and its snapshot bound (`maxSeq`), never more than one scan window of rows;
 * change them; then move the cursor and the counts. Which rows the op changes is the status
 * guard of its statement: retry takes failed and cancelled tasks, cancel queued ones (and asks
 * running ones to stop), delete every one that is not running. A matching task outside the guard
 * counts as skipped. The cursor only moves down, so a task is never changed twice by one
 * operation, and a step that dies before its commit leaves the cursor where it was.
 */
import { parseFilter } from '../../core/filter.js';
import type { TaskStatus } from '../../core/task.js';
import type { BulkOp, OperationRecord, OperationStatus } from '../driver.js';
import { eventsOf, type PendingEvent } from './events.js';
import { listQuery, type ListQuery } from './list-filter.js';

/** The walk of the operation's next step: seqs of matching tasks, newest first. */
export function stepQuery(
  op: OperationRecord,
  chunk: number,
  scanWindow: number | undefined,
  decodeId: (id: string) => number[],
  actionIndexed: readonly TaskStatus[],
): ListQuery {
  return listQuery(
    {
      filter: parseFilter(op.filter, 'filter'),
      limit: chunk,
      beforeSeq: op.cursor ?? op.maxSeq + 1,
      maxSeq: op.maxSeq,
      scanWindow,
    },
    decodeId,
    actionIndexed,
  );
}

export interface StepOutcome {
  /** Where the next step starts (below this seq). */
  cursor: number;
  finished: boolean;
}

/**
 * After the step found `found` (seqs, newest first): a full chunk continues below its last
 * task; otherwise a scan continues below the window's end unless the window reached the bottom,
 * and an index walk is finished.
 */
export function afterStep(
  query: ListQuery,
  found: readonly number[],
  windowEnd: { n: number; last: number | null } | null,
): StepOutcome {
  const lastFound = found[found.length - 1];
  if (found.length >= query.limit && lastFound !== undefined) return { cursor: lastFound, finished: false };
  if (query.scans && windowEnd && windowEnd.n >= query.window && windowEnd.last !== null)
    return { cursor: windowEnd.last, finished: false };
  return { cursor: lastFound ?? 0, finished: true };
}

/** What one step changed: how many tasks, what to announce after the commit, and (retry) their actions. */
export interface BulkChange {
  done: number;
  events: PendingEvent[];
  /** The action of each task a retry put back in the queue, for taskq_tasks_retried_total. */
  retried?: string[];
}

/** The change of a retry step, from the rows its statement returned. */
export const bulkRetried = (rows: { id: string; action: string }[]): BulkChange => ({
  done: rows.length,
  events: eventsOf.bulkRetried(rows.map((r) => r.id)),
  retried: rows.map((r) => r.action),
});

/** The statuses after a step. */
export const stepStatus = (finished: boolean): OperationStatus => (finished ? 'completed' : 'running');

/** An operation row as both drivers read it (SQLite gives flags as 0/1). */
export interface OperationRow {
  id: string;
  op: string;
  filter: string;
  status: string;
  matched: number;
  matched_exact: number | boolean;
  done: number;
  skipped: number;
  errors: number;
  last_error: string | null;
  max_seq: number;
  cursor: number | null;
  idempotency_key: string | null;
  created_by: string | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

export function toOperationRecord(row: OperationRow): OperationRecord {
  return {
    id: row.id,
    op: row.op as BulkOp,
    filter: JSON.parse(row.filter) as Record<string, string>,
    status: row.status as OperationStatus,
    matched: row.matched,
    matchedExact: row.matched_exact === true || row.matched_exact === 1,
    done: row.done,
    skipped: row.skipped,
    errors: row.errors,
    lastError: row.last_error,
    maxSeq: row.max_seq,
    cursor: row.cursor,
    idempotencyKey: row.idempotency_key,
    createdBy: row.created_by,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}
