/**
 * Queue statistics: counts by status and action, queue age, and the last hour's throughput, and
 * one shared feed of them for live followers (GET /events/stats).
 *
 * The feed reads only while at least one follower listens, so many open dashboards cost one read
 * per tick between them and none cost nothing. The read is cheap at any table size (trigger-kept
 * counters, a per-minute rollup and one index probe: docs/stats.md), so it reads when this process
 * saw a change and every STATS_REFRESH_MS for changes it cannot see (claims, other processes,
 * queue age); it still never spends more than a tenth of its time reading, should a database be
 * slow. Followers hear of new stats only when they changed, and of every other tick as `idle`.
 */
import { TASK_STATUSES, zeroCounts, type StatusCounts } from '../core/task.js';
import type { TaskQueue, Unsubscribe } from './queue.js';

/** How far back throughput is reported, one point per minute. */
export const STATS_WINDOW_MS = 60 * 60 * 1000;
export const STATS_PUSH_INTERVAL_MS = 1000;
/** Reads cost the same at any table size (docs/stats.md), so even unseen changes show within 2 s. */
const STATS_REFRESH_MS = 2000;
const MINUTE_MS = 60_000;

export type { StatusCounts };

/** Times are epoch milliseconds. */
export interface QueueStats {
  counts: StatusCounts;
  total: number;
  byAction: { action: string; counts: StatusCounts; total: number }[];
  /** Null when nothing is queued. */
  oldestQueuedAgeMs: number | null;
  /** Every minute of the window, oldest first, zeros included. */
  throughput: { minute: number; completed: number; failed: number }[];
  generatedAt: number;
}

export async function readStats(queue: TaskQueue, now = Date.now()): Promise<QueueStats> {
  const firstMinute = Math.floor(now / MINUTE_MS) * MINUTE_MS - STATS_WINDOW_MS + MINUTE_MS;
  const [counts, points] = await Promise.all([queue.counts(), queue.throughput(firstMinute)]);
  const byAction = new Map<string, StatusCounts>();
  for (const { action, status, count } of counts.byAction) {
    const entry = byAction.get(action) ?? zeroCounts();
    entry[status] += count;
    byAction.set(action, entry);
  }
  const perMinute = new Map(points.map((p) => [Number(p.minute), p]));
  const sum = (c: StatusCounts) => TASK_STATUSES.reduce((n, s) => n + c[s], 0);
  return {
    counts: counts.byStatus,
    total: sum(counts.byStatus),
    byAction: [...byAction].map(([action, c]) => ({ action, counts: c, total: sum(c) })),
    oldestQueuedAgeMs: counts.oldestQueuedAt === null ? null : Math.max(0, now - counts.oldestQueuedAt),
    throughput: Array.from({ length: STATS_WINDOW_MS / MINUTE_MS }, (_, i) => {
      const minute = firstMinute + i * MINUTE_MS;
      const point = perMinute.get(minute);
      return { minute, completed: Number(point?.completed ?? 0), failed: Number(point?.failed ?? 0) };
    }),
    generatedAt: now,
  };
}

export interface StatsFollower {
  /** The stats changed; a new follower gets the current stats at once. */
  changed(stats: QueueStats): void;
  /** A tick passed with nothing new (followers send keep-alives from here). */
  idle(): void;
}

/** One ticker for every follower, as the policy at the top of this file says. */
export class StatsFeed {
  private readonly followers = new Set<StatsFollower>();
  private timer: NodeJS.Timeout | undefined;
  private stopListening: Unsubscribe | undefined;
  private last: { stats: QueueStats; key: string } | undefined;
  private reading = false;
  private dirty = true;
  private lastReadAt = 0;
  /** Reads are spaced so that counting takes at most a tenth of the time. */
  private nextReadAt = 0;

  constructor(
    private readonly queue: TaskQueue,
    private readonly onReadError: (err: unknown) => void,
  ) {}

  follow(follower: StatsFollower): Unsubscribe {
    this.followers.add(follower);
    if (this.last) follower.changed(this.last.stats);
    else this.dirty = true;
    if (!this.stopListening) {
      this.dirty = true; // changes went unseen while nobody followed
      this.stopListening = this.queue.onChange(() => (this.dirty = true));
    }
    void this.tick();
    this.timer ??= setInterval(() => void this.tick(), STATS_PUSH_INTERVAL_MS).unref();
    return () => {
      this.followers.delete(follower);
      if (this.followers.size === 0) this.stop();
    };
  }

  private async tick(): Promise<void> {
    const startedAt = Date.now();
    const due = this.dirty || startedAt - this.lastReadAt >= STATS_REFRESH_MS;
    if (!due || startedAt < this.nextReadAt || this.reading) return this.idle();
    this.dirty = false;
    this.reading = true;
    this.lastReadAt = startedAt;
    let stats: QueueStats;
    try {
      stats = await readStats(this.queue);
    } catch (err) {
      this.onReadError(err);
      return;
    } finally {
      this.reading = false;
      this.nextReadAt = Date.now() + 9 * (Date.now() - startedAt);
    }
    // generatedAt changes every time; compare without it.
    const key = JSON.stringify({ ...stats, generatedAt: 0 });
    if (key === this.last?.key) return this.idle();
    this.last = { stats, key };
    for (const follower of this.followers) follower.changed(stats);
  }

  private idle(): void {
    for (const follower of this.followers) follower.idle();
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopListening?.();
    this.stopListening = undefined;
  }
}
