/** The one retry decision (src/core/retry.ts): which attempt ends retry, and when. */
import { describe, expect, it } from 'vitest';
import { backoffDelayMs, decideRetry, willRetry, type AttemptEnd } from '../src/core/retry.js';

const policy = { baseMs: 100, maxMs: 1000 };
const NOW = 1_700_000_000_000;
const first = { attempts: 1, maxAttempts: 3 };
const last = { attempts: 3, maxAttempts: 3 };

describe('decideRetry', () => {
  const retryable: [string, AttemptEnd][] = [
    ['a thrown error', { kind: 'failed', permanent: false }],
    ['a timeout', { kind: 'aborted', abort: { kind: 'timeout' } }],
    ['an expired lease', { kind: 'lease_expired', cancelRequested: false }],
  ];
  it.each(retryable)('retries %s while attempts remain, after the backoff', (_, end) => {
    expect(decideRetry(first, end, policy, NOW, () => 0)).toEqual({ retry: true, retryAt: NOW + 50 });
    expect(decideRetry(first, end, policy, NOW, () => 1)).toEqual({ retry: true, retryAt: NOW + 100 });
    expect(decideRetry(last, end, policy, NOW)).toEqual({ retry: false });
  });

  const final: [string, AttemptEnd][] = [
    ['completed', { kind: 'completed' }],
    ['a permanent failure', { kind: 'failed', permanent: true }],
    ['a cancel', { kind: 'aborted', abort: { kind: 'cancel' } }],
    ['a lost lease', { kind: 'aborted', abort: { kind: 'lease_lost' } }],
    ['a shutdown', { kind: 'aborted', abort: { kind: 'shutdown' } }],
    ['an expired lease with a cancel request', { kind: 'lease_expired', cancelRequested: true }],
  ];
  it.each(final)('never retries %s', (_, end) => {
    expect(decideRetry(first, end, policy, NOW)).toEqual({ retry: false });
    expect(willRetry(first, end)).toBe(false);
  });

  it('doubles the ceiling per attempt up to maxMs, keeping half of it fixed', () => {
    const ceilings = [1, 2, 3, 4, 5, 6].map((a) => backoffDelayMs(a, policy, () => 1));
    expect(ceilings).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelayMs(4, policy, () => 0)).toBe(400);
  });
});
