/**
 * Works bulk operations (queue/bulk.ts). Every node runs one, API-only nodes too: it wakes when
 * this process stores an operation and otherwise looks every `pollMs` for a running one whose
 * lease is free or expired, takes its lease and works it to the end in steps
 * (`driver.stepOperation`: up to `chunk` tasks changed in one transaction, the cursor and counts
 * moved and the lease renewed in the same one), with a turn of the event loop between steps so
 * claims and requests go on meanwhile.
 *
 * A node that stops gracefully gives the lease up after its current step, so another node's
 * runner carries on at once; one that dies mid-operation stops renewing, and once its lease
 * (`leaseMs`) expires another node's runner takes the operation over from its cursor. A step either commits whole or not at
 * all, so no task is changed twice and none is missed. A step that fails (database unavailable)
 * is counted on the operation and tried again at the next pass, under the same lease.
 */
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { OperationRecord, QueueDriver } from '../drivers/driver.js';
import type { BulkOperations } from '../queue/bulk.js';
import { Signals } from './signals.js';
import { Ticker } from './timers.js';

export const OPERATION_CHUNK_DEFAULT = 500;
export const OPERATION_LEASE_MS_DEFAULT = 30_000;

export interface OperationRunnerOptions {
  driver: QueueDriver;
  bulk: BulkOperations;
  logger: Logger;
  /** This runner's lease owner; a random id by default. */
  owner?: string;
  pollMs?: number;
  leaseMs?: number;
  chunk?: number;
  /** Rows one step examines at most (shared/list-filter.ts). */
  scanWindow?: number;
  now?: () => number;
}

export interface OperationRunnerEvents {
  /** A step committed. */
  stepped: [operation: OperationRecord];
  /** This runner finished an operation. */
  finished: [operation: OperationRecord];
  /** A step failed; it is tried again. */
  failed: [error: Error];
}

export class OperationRunner extends Signals<OperationRunnerEvents> {
  readonly owner: string;
  private readonly ticker: Ticker;
  private running: Promise<void> | null = null;
  private started = false;
  /** Set by stop(): a pass under way ends after its current step. */
  private stopping = false;
  private unsubscribe: (() => void) | null = null;
  private readonly now: () => number;

  constructor(private readonly options: OperationRunnerOptions) {
    super();
    this.owner = options.owner ?? `ops-${randomUUID()}`;
    this.now = options.now ?? Date.now;
    this.ticker = new Ticker(options.pollMs ?? 1000, () => this.runOnce());
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    const wake = () => void this.runOnce();
    this.options.bulk.on('submitted', wake);
    this.unsubscribe = () => this.options.bulk.off('submitted', wake);
    this.ticker.start();
    wake(); // an operation left by a node that stopped may be waiting
  }

  /**
   * One pass: takes operations whose lease is free and works each to its end (or until this
   * runner stops or loses the lease). Resolves when the pass is over; a pass already under way
   * is joined rather than doubled.
   */
  runOnce(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<void> {
    const { driver, logger } = this.options;
    const leaseMs = this.options.leaseMs ?? OPERATION_LEASE_MS_DEFAULT;
    for (;;) {
      let op: OperationRecord | null;
      try {
        op = await driver.claimOperation({ owner: this.owner, now: this.now(), leaseMs });
      } catch (err) {
        logger.warn({ err }, 'looking for bulk operations failed; will try again');
        return;
      }
      if (!op) return;
      logger.info({ operation: op.id, op: op.op, filter: op.filter }, 'working a bulk operation');
      await this.work(op);
      if (this.stopping) return;
    }
  }

  /** Steps `op` until it is finished, the lease is lost, a step fails, or the runner stops. */
  private async work(op: OperationRecord): Promise<void> {
    const { driver, bulk, logger } = this.options;
    const leaseMs = this.options.leaseMs ?? OPERATION_LEASE_MS_DEFAULT;
    const chunk = this.options.chunk ?? OPERATION_CHUNK_DEFAULT;
    for (;;) {
      let next: OperationRecord | null;
      try {
        next = await driver.stepOperation({
          id: op.id,
          owner: this.owner,
          now: this.now(),
          leaseMs,
          chunk,
          scanWindow: this.options.scanWindow,
          onRetried: (actions) => bulk.retried(actions),
        });
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        logger.warn({ err, operation: op.id }, 'a bulk operation step failed; will try again');
        this.emit('failed', error);
        await driver
          .recordOperationError({ id: op.id, owner: this.owner, error: error.message, now: this.now() })
          .catch(() => undefined);
        if (this.stopping) await this.release(op);
        return;
      }
      if (!next) return; // another runner holds it now, or it is finished
      bulk.progressed(next);
      this.emit('stepped', next);
      if (next.status !== 'running') {
        logger.info(
          { operation: next.id, op: next.op, done: next.done, skipped: next.skipped },
          'bulk operation finished',
        );
        this.emit('finished', next);
        return;
      }
      if (this.stopping) return this.release(next);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Stopping: gives the lease up, so another node's runner takes the operation now, not in `leaseMs`. */
  private async release(op: OperationRecord): Promise<void> {
    try {
      await this.options.driver.releaseOperation({ id: op.id, owner: this.owner });
      this.options.logger.info(
        { operation: op.id, done: op.done },
        'stopping: bulk operation left to another node',
      );
    } catch (err) {
      // Not released: its lease expires as if this node had died, and another node carries on then.
      this.options.logger.warn({ err, operation: op.id }, 'releasing a bulk operation failed');
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.started = false;
    this.ticker.stop();
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.running;
  }
}
