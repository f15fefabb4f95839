/**
 * The rescuer, which every pool runs: every `leaseMs / 2` it returns tasks whose lease expired
 * (their worker died or stalled) to the queue, or finishes them when they are out of attempts or
 * were asked to cancel. That is `decideRetry` (core/retry.ts) for a `lease_expired` attempt: retry
 * at the backoff of the attempt that expired while attempts remain and no cancel was asked, else
 * final. The driver makes the decision in its rescue statement, given the pool's backoff policy,
 * since one statement rescues every expired task at once, whatever process held it.
 *
 * Times are the app's, not the database's, on both drivers: a lease expires at the claiming
 * pool's `now() + leaseMs` and is judged against the rescuing pool's `now()`. So a jump of the
 * clock moves every lease at once. Forward (NTP stepping the clock, a VM resumed): every lease
 * looks expired, live ones too. When the clock moved more than half a lease further than the
 * monotonic clock since the last pass, the rescuer therefore rescues nothing for one lease of
 * monotonic time: live workers renew at the new time meanwhile (every third of a lease), and
 * what is still expired after that was really abandoned, and is rescued then, once. Back: no
 * lease expires early; an abandoned one is rescued late, by the length of the jump.
 */
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../core/retry.js';
import type { QueueDriver, RescueResult } from '../drivers/driver.js';
import type { DbHealth } from './db-health.js';
import { PeriodicService } from './timers.js';

export interface RescuerOptions {
  driver: QueueDriver;
  logger: Logger;
  leaseMs: number;
  /** The pool's default backoff (a handler's own backoff is not known here). */
  backoff: BackoffPolicy;
  now: () => number;
  health: DbHealth;
  /** Monotonic time, to tell a jump of `now` from time passing; performance.now by default. */
  monotonic?: () => number;
}

/** Signals for the pool and for tests. */
export interface RescuerEvents {
  /** A pass rescued at least one task. */
  rescued: [result: RescueResult];
  /** The clock jumped forward by about `jumpMs`: no rescue for one lease. */
  clockJumped: [jumpMs: number];
}

export class Rescuer extends PeriodicService<RescuerEvents> {
  private lastPass: { wall: number; mono: number } | null = null;
  /** No rescue before this monotonic time (after a forward jump of the clock). */
  private holdUntil = -Infinity;

  constructor(private readonly options: RescuerOptions) {
    super(Math.max(100, Math.floor(options.leaseMs / 2)));
  }

  protected tick(): Promise<unknown> {
    return this.pass();
  }

  /** One rescue pass now (the timer calls this; so can a test). */
  async pass(): Promise<RescueResult | null> {
    const now = this.options.now();
    const mono = (this.options.monotonic ?? (() => performance.now()))();
    const { leaseMs, logger } = this.options;
    if (this.lastPass) {
      const jumpMs = now - this.lastPass.wall - (mono - this.lastPass.mono);
      if (jumpMs > leaseMs / 2) {
        this.holdUntil = mono + leaseMs;
        logger.warn({ jumpMs: Math.round(jumpMs) }, 'the clock jumped forward: no rescue for one lease');
        this.emit('clockJumped', jumpMs);
      }
    }
    this.lastPass = { wall: now, mono };
    if (mono < this.holdUntil) return { requeued: [], failed: [] };
    try {
      const result = await this.options.driver.rescueExpiredLeases({ now, backoff: this.options.backoff });
      if (result.requeued.length + result.failed.length > 0) {
        this.options.logger.warn(result, 'rescued tasks whose lease expired');
        this.emit('rescued', result);
      }
      return result;
    } catch (err) {
      this.options.health.error(err, 'rescuing expired leases failed');
      return null;
    }
  }
}
