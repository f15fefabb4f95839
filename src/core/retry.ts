/**
 * Retries: the one decision of whether an attempt that did not complete goes back to the queue,
 * and when. The worker pool asks it for failed and timed-out attempts, metrics ask it to label an
 * outcome, and the rescue statement of each driver computes the same thing in SQL for attempts
 * whose lease expired (the rescuer hands it the policy; see `rescueExpiredLeases` in the seam).
 *
 * Backoff: exponential with "full jitter" (AWS architecture blog), so that a burst of failures
 * does not come back as a burst. attempt 1 waits up to base, attempt 2 up to 2*base, ... capped at
 * `maxMs`. Half of the delay is fixed so a retry never comes back instantly.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** The longest wait before retrying after `attempt` (1 for the first run): min(max, base * 2^(attempt-1)). */
export function backoffCeilingMs(attempt: number, policy: BackoffPolicy): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
}

/** The wait before retrying after `attempt`: from half the ceiling up to the ceiling. */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeilingMs(attempt, policy);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Why an attempt was stopped before its handler settled. */
export type AbortKind = 'timeout' | 'cancel' | 'lease_lost' | 'shutdown';

/**
 * How one attempt ended, as far as retrying cares. The worker's `Outcome` is one of these; the
 * rescuer's attempts end as `lease_expired`.
 */
export type AttemptEnd =
  | { kind: 'completed' }
  | { kind: 'failed'; permanent: boolean }
  | { kind: 'aborted'; abort: { kind: AbortKind } }
  | { kind: 'lease_expired'; cancelRequested: boolean }
  | { kind: 'waiting' };

export type RetryDecision = { retry: true; retryAt: number } | { retry: false };

/** The attempt counters a decision reads; `attempts` counts the attempt that just ended. */
export type AttemptCount = { attempts: number; maxAttempts: number };

/**
 * Whether the attempt ends in another one: a thrown error that is not permanent, a timeout, or an
 * expired lease without a cancel request, while attempts remain. A cancel, a lost lease (the
 * rescuer decides that one) and a shutdown (the task is given back unspent) never count as a retry.
 */
export function willRetry(task: AttemptCount, end: AttemptEnd): boolean {
  const retryable =
    (end.kind === 'failed' && !end.permanent) ||
    (end.kind === 'aborted' && end.abort.kind === 'timeout') ||
    (end.kind === 'lease_expired' && !end.cancelRequested);
  return retryable && task.attempts < task.maxAttempts;
}

/** Retry or final, and when the retry may run: `now` plus the backoff of the attempt that ended. */
export function decideRetry(
  task: AttemptCount,
  end: AttemptEnd,
  backoff: BackoffPolicy,
  now: number,
  random: () => number = Math.random,
): RetryDecision {
  if (!willRetry(task, end)) return { retry: false };
  return { retry: true, retryAt: now + backoffDelayMs(task.attempts, backoff, random) };
}
