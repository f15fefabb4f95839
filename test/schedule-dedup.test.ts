/**
 * A schedule tick is deduplicated for a day (TICK_KEY_WINDOW_MS), whatever --idempotency-window-ms
 * says: a node whose clock is behind, or that checks late, must not queue a tick again once the
 * short request window has passed. On both drivers, with Date faked so the window can pass.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HandlerRegistry } from '../src/handlers/registry.js';
import { TaskQueue } from '../src/queue/queue.js';
import { Scheduler, type Schedule } from '../src/worker/scheduler.js';
import { BOTH_DRIVERS } from './support/drivers.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // on a whole second, so the next tick is T0 + 1 s
const EVERY_SECOND: Schedule = {
  name: 'beat',
  cron: '* * * * * *',
  timezone: 'UTC',
  action: 'sum',
  data: {},
};

afterEach(() => {
  vi.useRealTimers();
});

describe.each(BOTH_DRIVERS)('schedule tick dedup on %s', (_name, open, skip) => {
  it.skipIf(skip)(
    'a lagging node does not queue a tick again after the request idempotency window',
    async () => {
      const { driver, cleanup } = open();
      await driver.migrate();
      vi.useFakeTimers({ toFake: ['Date'], now: T0 });
      // The shortest request window the settings allow, so only the tick window can dedupe.
      const queue = new TaskQueue({
        driver,
        registry: new HandlerRegistry(),
        defaultMaxAttempts: 1,
        uniqueWindowMs: 1000,
      });
      const logger = pino({ level: 'silent' });
      const onTime = new Scheduler(queue, [EVERY_SECOND], logger);
      const lagging = new Scheduler(queue, [EVERY_SECOND], logger);
      try {
        vi.setSystemTime(T0 + 1500);
        await onTime.check();
        // Seconds later, a node whose clock reads T0 + 1.5 s sees the same tick for the first time.
        vi.setSystemTime(T0 + 5000);
        await lagging.check(T0 + 1500);
        const tasks = await driver.listTasks({ action: 'sum', limit: 10 });
        expect(tasks.map((t) => t.uniqueKey)).toEqual([`schedule:beat:${new Date(T0 + 1000).toISOString()}`]);
      } finally {
        await queue.close();
        await driver.close();
        await cleanup();
      }
    },
  );
});
