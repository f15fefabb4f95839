/**
 * Bulk operations over a filter (POST /tasks/bulk, docs/operations.md): retry, cancel or delete
 * every task a filter matches. Submitting counts the matches and stores the operation; the work
 * is done later, in steps of one small transaction each, by whichever node's OperationRunner
 * (worker/operation-runner.ts) holds the operation's lease. The same request while the operation
 * runs answers that operation (its request key is op + canonical filter), as does a repeated
 * Idempotency-Key, so a resubmission never does the work twice.
 *
 * Counting: a filter of status and action only is counted from the stats counters (exact, and
 * free at any size). Any other filter is counted within one window of COUNT_WINDOW rows: exact
 * when the window holds every candidate, otherwise a lower bound (`matchedExact: false`) that
 * the operation makes exact when it finishes.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import { QueueError } from '../core/errors.js';
import { filterScans, filterToParams, type TaskFilter } from '../core/filter.js';
import type { BulkOp, OperationRecord, QueueDriver } from '../drivers/driver.js';
import type { TaskCounts } from '../drivers/driver.js';

export type { BulkOp, OperationRecord };
export { BULK_OPS } from '../drivers/driver.js';

/** Rows a count examines at most (a dry run, a submission). */
export const COUNT_WINDOW = 50_000;
/** How often a follower re-reads an operation another node works on. */
const FOLLOW_POLL_MS = 250;

export interface BulkRequest {
  op: BulkOp;
  filter: TaskFilter;
  dryRun?: boolean;
  idempotencyKey?: string;
  /** Who asked, for the operation's record (and an audit log). */
  createdBy?: string | null;
}

export interface MatchCountResult {
  matched: number;
  /** False: at least `matched` (the count window ran out). */
  exact: boolean;
  /** The filter has conditions no index answers. */
  scans: boolean;
}

export interface BulkSubmitted extends MatchCountResult {
  operation: OperationRecord;
  /** False when an earlier submission (same request running, or same Idempotency-Key) answered. */
  created: boolean;
}

/** The counters' count of a filter of status and action only. */
function countFromCounters(counts: TaskCounts, filter: TaskFilter): number {
  if (filter.action === undefined)
    return filter.status
      ? counts.byStatus[filter.status]
      : Object.values(counts.byStatus).reduce((a, b) => a + b, 0);
  return counts.byAction
    .filter((r) => r.action === filter.action && (!filter.status || r.status === filter.status))
    .reduce((n, r) => n + r.count, 0);
}

const onlyStatusAndAction = (filter: TaskFilter) =>
  Object.keys(filterToParams(filter)).every((k) => k === 'status' || k === 'action');

interface BulkEvents {
  /** An operation was stored in this process (the runner wakes). */
  submitted: [operation: OperationRecord];
  /** An operation made progress in this process. */
  progressed: [operation: OperationRecord];
  /** A step in this process put these tasks back in the queue (the action of each). */
  retried: [actions: string[]];
}

export class BulkOperations extends EventEmitter<BulkEvents> {
  constructor(
    private readonly driver: QueueDriver,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** How many tasks match `filter` (see the top of this file for when it is exact). */
  async count(filter: TaskFilter): Promise<MatchCountResult> {
    const scans = filterScans(filter, this.driver.capabilities.actionIndexedStatuses);
    if (onlyStatusAndAction(filter))
      return { matched: countFromCounters(await this.driver.countTasks(), filter), exact: true, scans };
    const { count, exact } = await this.driver.countMatching({
      filter,
      limit: COUNT_WINDOW,
      scanWindow: COUNT_WINDOW,
    });
    return { matched: count, exact, scans };
  }

  /** A dry run counts; otherwise the operation is stored (or an earlier one answered). */
  async submit(request: BulkRequest): Promise<MatchCountResult | BulkSubmitted> {
    const counted = await this.count(request.filter);
    if (request.dryRun) return counted;
    const filter = filterToParams(request.filter);
    const { operation, created } = await this.driver.createOperation({
      id: randomUUID(),
      op: request.op,
      filter,
      requestKey: `${request.op} ${JSON.stringify(filter)}`,
      idempotencyKey: request.idempotencyKey ?? null,
      createdBy: request.createdBy ?? null,
      matched: counted.matched,
      matchedExact: counted.exact,
      now: this.now(),
    });
    if (!created && (operation.op !== request.op || !isDeepStrictEqual(operation.filter, filter))) {
      throw new QueueError(
        'TQ_ERR_CONFLICT',
        `Idempotency-Key "${request.idempotencyKey}" was used for a different bulk request (operation ${operation.id})`,
      );
    }
    if (created) this.emit('submitted', operation);
    const matched = created ? counted.matched : operation.matched;
    const exact = created ? counted.exact : operation.matchedExact;
    return { operation, created, matched, exact, scans: counted.scans };
  }

  async get(id: string): Promise<OperationRecord | null> {
    return this.driver.getOperation({ id });
  }

  /** Told by the runner of this process after each step. */
  progressed(operation: OperationRecord): void {
    this.emit('progressed', operation);
  }

  /** Told by the runner of this process after a retry step, with the action of each task it retried. */
  retried(actions: string[]): void {
    this.emit('retried', actions);
  }

  /**
   * The operation now and after each change, until it is finished or `signal` aborts; woken by
   * this process's runner, and re-read every FOLLOW_POLL_MS for a runner on another node.
   * Yields `null` as a keep-alive when nothing changed for `idleMs`.
   */
  async *follow(id: string, idleMs: number, signal: AbortSignal): AsyncGenerator<OperationRecord | null> {
    let last: OperationRecord | null = await this.get(id);
    if (!last) return;
    yield last;
    let quietSince = Date.now();
    while (last.status === 'running' && !signal.aborted) {
      await this.nextProgress(id, FOLLOW_POLL_MS, signal);
      const current: OperationRecord | null = await this.get(id);
      if (!current) return;
      if (current.updatedAt !== last.updatedAt || current.status !== last.status) {
        last = current;
        quietSince = Date.now();
        yield current;
      } else if (Date.now() - quietSince >= idleMs) {
        quietSince = Date.now();
        yield null;
      }
    }
  }

  private nextProgress(id: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('progressed', onProgress);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const onProgress = (op: OperationRecord) => op.id === id && done();
      const timer = setTimeout(done, timeoutMs);
      this.on('progressed', onProgress);
      signal.addEventListener('abort', done);
    });
  }
}
