/**
 * Event-loop stalls, for the pool's health. A handler that computes synchronously (a busy loop),
 * a long GC pause or a frozen process stops every timer of the process: heartbeats come late,
 * leases lapse, and other workers rescue the tasks while this one still runs them. A timer ticks
 * every TICK_MS; a tick that comes more than `thresholdMs` late means the loop was blocked.
 *
 * The rule the pool's health (and so /healthz) follows: unhealthy while a block longer than
 * `thresholdMs` is seen, and for `windowMs` after the loop freed; then healthy again by itself.
 * A block is also seen before its late tick has run (a health check answered first in the same
 * turn of the loop). Measured on the monotonic clock: a wall-clock jump is not a stall.
 */

const TICK_MS = 100;

export interface LoopStall {
  /** How long the loop did not turn. */
  blockedMs: number;
}

export class LoopStallWatch {
  private lastTickAt: number;
  private last: { blockedMs: number; endedAt: number } | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: { thresholdMs: number; windowMs: number },
    private readonly now: () => number = () => performance.now(),
  ) {
    this.lastTickAt = now();
  }

  start(): void {
    if (this.timer) return;
    this.lastTickAt = this.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const now = this.now();
    const gap = now - this.lastTickAt;
    if (gap - TICK_MS > this.options.thresholdMs) this.last = { blockedMs: Math.round(gap), endedAt: now };
    this.lastTickAt = now;
  }

  /** The block to report under the rule above, or null. */
  stall(): LoopStall | null {
    if (!this.timer) return null;
    const now = this.now();
    const gap = now - this.lastTickAt;
    if (gap - TICK_MS > this.options.thresholdMs) return { blockedMs: Math.round(gap) };
    if (this.last && now - this.last.endedAt <= this.options.windowMs)
      return { blockedMs: this.last.blockedMs };
    return null;
  }
}
