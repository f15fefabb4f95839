/**
 * Retry backoff: exponential with "full jitter" (AWS architecture blog), so that a burst of
 * failures does not come back as a burst. attempt 1 waits up to base, attempt 2 up to 2*base, ...
 * capped at `maxMs`. Half of the delay is fixed so a retry never comes back instantly.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
