/**
 * What the HTTP layer reads of this process's workers, for /healthz and /metrics. worker/'s
 * WorkerPool implements it; api/ accepts it, so api/ never imports worker/.
 */
import type { ActionLimits, LimitedClaim } from './flow.js';
import type { Outcome } from './outcome.js';
import type { TaskRecord } from './task.js';

export interface WorkerStatus {
  /** Healthy while the workers can claim and keep their leases; otherwise why not. */
  health(): { ok: boolean; reason?: string };
  /** Results finished and not yet written. */
  readonly resultsPending: number;
  /** How long writing results has failed without a success (ms); 0 while they are written. */
  resultsStuckMs(): number;
  /** Calls `listener` after every run of a handler; returns the unsubscribe. */
  onTaskFinished(listener: (task: TaskRecord, outcome: Outcome, durationMs: number) => void): () => void;
  /** The flow-control limits this process claims under (rate limits, per-key caps). */
  readonly flowLimits: readonly ActionLimits[];
  /** Calls `listener` when a claim left ready tasks queued because of a limit; returns the unsubscribe. */
  onClaimLimited(listener: (limited: LimitedClaim[]) => void): () => void;
  /** Calls `listener` for every failed write of results (each is retried); returns the unsubscribe. */
  onResultWriteFailed(listener: () => void): () => void;
  /** Calls `listener` with the tasks the workers took as they were stored (hand-off); returns the unsubscribe. */
  onHandedOff(listener: (tasks: TaskRecord[]) => void): () => void;
}
