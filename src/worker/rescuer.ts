/**
 * The rescuer, which every pool runs: every `leaseMs / 2` it returns tasks whose lease expired
 * (their worker died or stalled) to the queue, or finishes them when they are out of attempts or
 * were asked to cancel. That is `decideRetry` (core/retry.ts) for a `lease_expired` attempt: retry
 * at the backoff of the attempt that expired while attempts remain and no cancel was asked, else
 * final. The driver makes the decision in its rescue statement, given the pool's backoff policy,
 * since one statement rescues every expired task at once, whatever process held it.
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
}

/** Signals for the pool and for tests. */
export interface RescuerEvents {
  /** A pass rescued at least one task. */
  rescued: [result: RescueResult];
}

export class Rescuer extends PeriodicService<RescuerEvents> {
  constructor(private readonly options: RescuerOptions) {
    super(Math.max(100, Math.floor(options.leaseMs / 2)));
  }

  protected tick(): Promise<unknown> {
    return this.pass();
  }

  /** One rescue pass now (the timer calls this; so can a test). */
  async pass(): Promise<RescueResult | null> {
    try {
      const result = await this.options.driver.rescueExpiredLeases({
        now: this.options.now(),
        backoff: this.options.backoff,
      });
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
