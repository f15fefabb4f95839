/**
 * Lets requests wait for a task to change (long-poll, event streams) without a polling loop per
 * request: the driver announces committed changes (`tasksChanged`), and each waiter is woken by
 * the change of its own task. Drivers whose announcements do not cross processes (SQLite with
 * workers in other processes) are covered by a slow re-check every `fallbackMs`.
 */
import type { QueueDriver, Unsubscribe } from '../drivers/driver.js';

export class TaskWatcher {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly unsubscribe: Unsubscribe;
  /** Set at shutdown: waits end at once so open requests can finish. */
  closed = false;

  constructor(
    driver: QueueDriver,
    /** Longest wait before a waiter re-reads the task anyway. */
    readonly fallbackMs: number,
  ) {
    this.unsubscribe = driver.on('tasksChanged', ({ ids }) => {
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

  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const set of this.waiters.values()) for (const wake of set) wake();
    this.waiters.clear();
  }
}
