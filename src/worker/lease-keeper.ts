/**
 * The lease keeper: every `leaseMs / 3` one statement renews the leases of every task this pool
 * holds, running or buffered. A held task the renewal no longer finds was rescued elsewhere (this
 * process stalled past its lease) and is reported lost; a task the renewal finds with a cancel
 * request is reported too (the cancel event of another process may never reach this one).
 */
import type { QueueDriver } from '../drivers/driver.js';
import type { DbHealth } from './db-health.js';
import { PeriodicService } from './timers.js';

export interface LeaseKeeperOptions {
  driver: QueueDriver;
  owner: string;
  leaseMs: number;
  now: () => number;
  health: DbHealth;
  /** Ids of the tasks held now. */
  held: () => string[];
  onLeaseLost: (ids: string[]) => void;
  onCancelRequested: (ids: string[]) => void;
}

export interface Heartbeat {
  /** Held tasks whose lease was renewed. */
  renewed: number;
  /** Held when the renewal was sent, and not renewed: their leases are gone. */
  lost: string[];
  /** Renewed tasks that a client asked to cancel. */
  cancelRequested: string[];
}

/** Signals for tests. */
export interface LeaseKeeperEvents {
  /** A renewal was answered and its news handed on. */
  heartbeat: [beat: Heartbeat];
}

export class LeaseKeeper extends PeriodicService<LeaseKeeperEvents> {
  constructor(private readonly options: LeaseKeeperOptions) {
    super(Math.max(50, Math.floor(options.leaseMs / 3)));
  }

  protected tick(): Promise<unknown> {
    return this.beat();
  }

  /** One renewal now (the timer calls this; so can a test). */
  async beat(): Promise<void> {
    // Judge only tasks held before the statement was sent. A claim that commits while it runs is
    // missing from its answer on PostgreSQL (the UPDATE sees rows as of its start), yet that
    // task's lease is fresh; calling it lost would strand it until its lease expires and run it twice.
    const asked = this.options.held();
    if (asked.length === 0) return;
    const { driver, owner, leaseMs, health } = this.options;
    let held;
    try {
      held = await driver.extendLeases({ owner, now: this.options.now(), leaseMs });
      health.success();
    } catch (err) {
      health.error(err, 'renewing leases failed');
      return;
    }
    const renewed = new Set(held.map((h) => h.id));
    const lost = asked.filter((id) => !renewed.has(id));
    const cancelRequested = held.filter((h) => h.cancelRequested).map((h) => h.id);
    if (lost.length > 0) this.options.onLeaseLost(lost);
    if (cancelRequested.length > 0) this.options.onCancelRequested(cancelRequested);
    this.emit('heartbeat', { renewed: held.length, lost, cancelRequested });
  }
}
