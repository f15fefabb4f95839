/**
 * The claim floor: where a plain claim starts reading tasks_claimable.
 *
 * Why: a claim moves tasks out of `queued`, but their entries stay in tasks_claimable until
 * VACUUM removes them, and they sort first (the oldest keys). A claim reading from the front of
 * the index steps over every task claimed since the last vacuum: about 50 index pages (0.1-0.5 ms)
 * once 10,000 tasks have been claimed, 5,000 pages after a million, on every claim. The floor skips
 * them: after a claim, the next one starts at the last claimed task's priority and run_at, and
 * reads higher and lower priorities from their fronts as before (queries.ts, floorClaimSql).
 *
 * What can be queued before the floor, and how each is still claimed:
 * - New tasks whose insert commits after a claim passed their run_at (a batch that commits after
 *   a newer one, or a node whose clock is behind): their tasksQueued event, here or from another
 *   process, carries their earliest run_at, and the floor moves back to it.
 * - Tasks queued again (released, retried, rescued, unblocked, resumed, retried by an operator):
 *   their event says `requeued`, and the next claim reads from the front.
 * - Tasks a claim skipped while another transaction held their row lock, or whose announcement was
 *   lost (the announcing process died after its commit): every `fullScanEveryMs` of this process's
 *   clock, a claim reads from the front again.
 * So at worst a task waits `fullScanEveryMs` longer than it would have; none is left behind.
 * Claims that skip actions (at their per-action limit) or run under flow-control limits read from
 * the front and leave the floor as it was: they pass tasks they do not take.
 */
import type { DriverEvents } from '../driver.js';

/** A position in claim order (tasks_claimable: priority DESC, run_at, seq). */
export interface ClaimKey {
  priority: number;
  runAt: number;
}

/** Where one claim starts (`from` null: the front of the index), taken before it is sent. */
export interface ClaimStart {
  from: ClaimKey | null;
  /** Changes so far: a claim that one overtook must not set the floor after it. */
  generation: number;
}

export interface ClaimFloorOptions {
  /** A claim reads from the front at least this often. */
  fullScanEveryMs: number;
  /** This process's monotonic clock, in ms (tests inject one). */
  clock?: () => number;
}

export const CLAIM_FLOOR_DEFAULTS: ClaimFloorOptions = { fullScanEveryMs: 1000 };

export class ClaimFloor {
  private key: ClaimKey | null = null;
  private lastFullScan = -Infinity;
  private generation = 0;
  private readonly clock: () => number;

  constructor(private readonly options: ClaimFloorOptions = CLAIM_FLOOR_DEFAULTS) {
    this.clock = options.clock ?? (() => performance.now());
  }

  /** Where the next claim starts. */
  start(): ClaimStart {
    const due = this.clock() - this.lastFullScan >= this.options.fullScanEveryMs;
    return { from: due ? null : this.key, generation: this.generation };
  }

  /** The claim begun at `start` returned `last` as its last task in claim order, or nothing. */
  claimed(start: ClaimStart, last: ClaimKey | undefined): void {
    if (start.from === null) this.lastFullScan = this.clock();
    if (last && start.generation === this.generation)
      this.key = { priority: last.priority, runAt: last.runAt };
  }

  /** Tasks were queued (committed, here or elsewhere): may they sort before the floor? */
  queued(event: DriverEvents['tasksQueued']): void {
    this.generation++;
    if (this.key === null) return;
    if (event.requeued || event.earliestRunAt === undefined) this.key = null;
    else if (event.earliestRunAt < this.key.runAt) this.key = { ...this.key, runAt: event.earliestRunAt };
  }
}
