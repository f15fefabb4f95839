/**
 * Retention: deletes finished tasks older than their status's retention, and audit log entries
 * older than `--audit-retention`, in small batches with a turn of the event loop between them, so a large backlog never holds the database (or the
 * workers sharing this process) for long. Runs every `intervalMs` in every worker process;
 * concurrent pruners are harmless (each batch is one short transaction).
 */
import type { Logger } from 'pino';
import type { FinishedBefore, QueueDriver } from '../drivers/driver.js';

export interface Retention {
  /** 0 keeps completed tasks forever. */
  completedMs: number;
  /** 0 keeps failed and cancelled tasks forever. */
  failedMs: number;
  /** 0 keeps audit log entries forever; absent: as 0. */
  auditMs?: number;
}

export const PRUNE_BATCH_DEFAULT = 500;

/** The cut-offs for `now`; a retention of 0 becomes a cut-off no task can be older than. */
export function cutoffs(retention: Retention, now = Date.now()): FinishedBefore {
  const before = (ms: number) => (ms > 0 ? now - ms : 0);
  return {
    completed: before(retention.completedMs),
    failed: before(retention.failedMs),
    cancelled: before(retention.failedMs),
  };
}

/** Runs `deleteBatch` until it deletes fewer than `batch` rows; returns the total. */
async function inBatches(
  deleteBatch: (limit: number) => Promise<number>,
  batch: number,
  onBatch?: (deleted: number) => void,
): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await deleteBatch(batch);
    total += deleted;
    if (deleted > 0) onBatch?.(total);
    if (deleted < batch) return total;
    await new Promise((resolve) => setImmediate(resolve)); // let workers and requests in between batches
  }
}

/** Deletes every prunable task in batches; `onBatch` reports progress. Returns the total. */
export function pruneAll(
  driver: QueueDriver,
  finishedBefore: FinishedBefore,
  { batch = PRUNE_BATCH_DEFAULT, onBatch }: { batch?: number; onBatch?: (deleted: number) => void } = {},
): Promise<number> {
  return inBatches((limit) => driver.pruneTasks({ finishedBefore, limit }), batch, onBatch);
}

/** Deletes every audit log entry written before `before`, in batches. Returns how many. */
export function pruneAudit(
  driver: QueueDriver,
  before: number,
  batch = PRUNE_BATCH_DEFAULT,
): Promise<number> {
  return inBatches((limit) => driver.pruneAuditEntries({ before, limit }), batch);
}

export class Pruner {
  /** The next pass; null once stopped (a pass that ends after stop schedules nothing). */
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly driver: QueueDriver,
    private readonly retention: Retention,
    private readonly logger: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  start(): void {
    const { completedMs, failedMs, auditMs = 0 } = this.retention;
    if (this.timer || (completedMs === 0 && failedMs === 0 && auditMs === 0)) return;
    this.schedule(Math.min(this.intervalMs, 5000)); // a first pass soon after start
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(async () => {
      await this.runOnce();
      if (this.timer) this.schedule(this.intervalMs);
    }, delayMs);
    this.timer.unref();
  }

  async runOnce(): Promise<number> {
    if (this.running) return 0;
    let deleted = 0;
    this.running = (async () => {
      try {
        deleted = await pruneAll(this.driver, cutoffs(this.retention));
        if (deleted > 0) this.logger.info({ deleted }, 'pruned finished tasks past their retention');
        const auditMs = this.retention.auditMs ?? 0;
        if (auditMs > 0) {
          const entries = await pruneAudit(this.driver, Date.now() - auditMs);
          if (entries > 0) this.logger.info({ entries }, 'pruned audit log entries past their retention');
        }
      } catch (err) {
        this.logger.error({ err }, 'pruning failed; will try again');
      }
    })();
    await this.running;
    this.running = null;
    return deleted;
  }

  async stop(): Promise<void> {
    // A pass firing after stop would find the database closed.
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
