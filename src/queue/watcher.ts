/**
 * Lets requests wait for a task to change (long-poll, event streams) without a polling loop per
 * request: the driver announces committed changes (`tasksChanged`), and each waiter is woken by
 * the change of its own task. Drivers whose announcements do not cross processes (SQLite with
 * workers in other processes) are covered by a slow re-check every `fallbackMs`.
 *
 * It subscribes on `start()` or at the first wait, not when built: a worker-only process never
 * waits, so on PostgreSQL it never listens to the cluster's completion announcements.
 */
import type { QueueDriver, Unsubscribe } from '../drivers/driver.js';

export class TaskWatcher {
  private readonly waiters = new Map<string, Set<() => void>>();
  private unsubscribe: Unsubscribe | null = null;
  /** Set at shutdown: waits end at once so open requests can finish. */
  closed = false;

  constructor(
    private readonly driver: QueueDriver,
    /** Longest wait before a waiter re-reads the task anyway. */
    readonly fallbackMs: number,
  ) {}

  /** Subscribes to change announcements (idempotent); processes that serve waits call it early. */
  start(): void {
    if (this.unsubscribe || this.closed) return;
    this.unsubscribe = this.driver.on('tasksChanged', ({ ids }) => {
      for (const id of ids) {
        const set = this.waiters.get(id);
        if (!set) continue;
        this.waiters.delete(id);
        for (const wake of set) wake();
      }
    });
  }

  /** Resolves at the next announced change of task `id`, after `timeoutMs`, or when `signal` aborts. */
  nextChange(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.start();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const set = this.waiters.get(id);
        set?.delete(done);
        if (set?.size === 0) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, Math.min(timeoutMs, this.fallbackMs));
      signal?.addEventListener('abort', done, { once: true });
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      set.add(done);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const set of this.waiters.values()) for (const wake of set) wake();
    this.waiters.clear();
  }
}
