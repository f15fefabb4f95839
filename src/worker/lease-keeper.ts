/**
 * The lease keeper: every `leaseMs / 3` one statement renews the leases of every task this pool
 * holds, running or buffered, and of those whose results wait in the completer (so a slow write
 * does not let them be run again). Only those: a task this process failed to give back, or whose
 * result it dropped, is left to expire and be rescued. A held task the renewal no longer finds was rescued elsewhere (this
 * process stalled past its lease) and is reported lost; a task the renewal finds with a cancel
 * request is reported too (the cancel event of another process may never reach this one). The
 * renewal also records when held tasks' handlers started, if the database does not have it yet.
 */
import type { QueueDriver } from '../drivers/driver.js';

/** What a renewal names a task by. */
export interface TaskRef {
  id: string;
  seq: number;
  /** When its handler started, if it has (the renewal records it). */
  startedAt?: number | null;
}
import type { DbHealth } from './db-health.js';
import { PeriodicService } from './timers.js';

export interface LeaseKeeperOptions {
  driver: QueueDriver;
  owner: string;
  leaseMs: number;
  now: () => number;
  health: DbHealth;
  /** The tasks held now (judged: one not renewed has lost its lease). */
  held: () => TaskRef[];
  /** Finished tasks whose results are not written yet: renewed, not judged. */
  awaitingResult: () => TaskRef[];
  onLeaseLost: (ids: string[]) => void;
  onCancelRequested: (ids: string[]) => void;
  /**
   * Sent on the same timer, alongside each renewal (not after it): the node's heartbeat
   * (queue/nodes.ts), so a worker node keeps one timer for both.
   */
  alongside?: () => Promise<void>;
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
    return Promise.all([this.beat(), this.options.alongside?.()]);
  }

  /** One renewal now (the timer calls this; so can a test). */
  async beat(): Promise<void> {
    // Judge only tasks held before the statement was sent. A claim that commits while it runs is
    // missing from its answer on PostgreSQL (the UPDATE sees rows as of its start), yet that
    // task's lease is fresh; calling it lost would strand it until its lease expires and run it twice.
    const asked = this.options.held();
    const seqs = [...asked, ...this.options.awaitingResult()].map((t) => t.seq);
    if (seqs.length === 0) return;
    // Running tasks' start times ride on the renewal, so a long task shows its start before its result.
    const started = asked.flatMap((t) =>
      t.startedAt == null ? [] : [{ seq: t.seq, startedAt: t.startedAt }],
    );
    const { driver, owner, leaseMs, health } = this.options;
    let held;
    try {
      held = await driver.extendLeases({ owner, seqs, now: this.options.now(), leaseMs, started });
      health.success();
    } catch (err) {
      health.error(err, 'renewing leases failed');
      return;
    }
    const renewed = new Set(held.map((h) => h.id));
    const lost = asked.filter((t) => !renewed.has(t.id)).map((t) => t.id);
    const cancelRequested = held.filter((h) => h.cancelRequested).map((h) => h.id);
    if (lost.length > 0) this.options.onLeaseLost(lost);
    if (cancelRequested.length > 0) this.options.onCancelRequested(cancelRequested);
    this.emit('heartbeat', { renewed: held.length, lost, cancelRequested });
  }
}
