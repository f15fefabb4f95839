/** Retention: the background pruner and `taskq prune`. */
import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Pruner } from '../src/worker/pruner.js';
import { insert, newTask, openTestDriver } from './support/pool.js';
import { runCli } from './support/process.js';
import type { SqliteDriver } from '../src/drivers/sqlite/sqlite-driver.js';

const DAY = 86_400_000;

/** Finishes `n` tasks of each outcome as if they had finished `ageMs` ago. */
async function finished(driver: SqliteDriver, n: number, ageMs: number) {
  const now = Date.now() - ageMs;
  const tasks = await insert(
    driver,
    ...Array.from({ length: 2 * n }, () => newTask({ action: 'x', maxAttempts: 1, runAt: now - 1 })),
  );
  const claimed = await driver.claimTasks({ owner: 'w', limit: tasks.length, now, leaseMs: 60_000 });
  const lease = (t: { id: string; seq: number; attempts: number }) => ({
    id: t.id,
    seq: t.seq,
    owner: 'w',
    attempt: t.attempts,
  });
  await driver.completeTasks({
    completions: claimed.slice(0, n).map((t) => ({ ...lease(t), result: 1 })),
    now,
  });
  await driver.failTasks({
    failures: claimed.slice(n).map((t) => ({ ...lease(t), error: 'e', outcome: 'failed' as const })),
    now,
  });
}

describe('retention', () => {
  it('prunes completed tasks after their retention and failed ones after theirs, leaving the rest', async () => {
    const { driver, cleanup } = await openTestDriver();
    try {
      await finished(driver, 3, 10 * DAY); // completed: pruned (7 d); failed: kept (30 d)
      await finished(driver, 2, 40 * DAY); // both pruned
      await finished(driver, 4, 1 * DAY); // both kept
      await insert(driver, newTask({ action: 'x' })); // queued: never pruned
      const pruner = new Pruner(
        driver,
        { completedMs: 7 * DAY, failedMs: 30 * DAY },
        pino({ level: 'silent' }),
      );
      expect(await pruner.runOnce()).toBe(3 + 2 + 2);
      const counts = (await driver.countTasks()).byStatus;
      expect(counts).toMatchObject({ completed: 4, failed: 3 + 4, queued: 1 });
    } finally {
      await cleanup();
    }
  });

  it('does not run after stop, when the database may already be closed', async () => {
    const { driver, cleanup } = await openTestDriver();
    const errors: unknown[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => errors.push(line) });
    // The pruner's timers are driven by hand: the first run's 30 ms pass at once, without waiting.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const pruner = new Pruner(driver, { completedMs: DAY, failedMs: DAY }, logger, 30);
      pruner.start();
      await pruner.stop();
      await cleanup(); // closes the driver
      await vi.advanceTimersByTimeAsync(100); // past the first run's 30 ms
    } finally {
      vi.useRealTimers();
    }
    expect(errors).toEqual([]);
  });

  it('taskq prune --older-than deletes finished tasks in batches and reports progress', async () => {
    const { driver, path, cleanup } = await openTestDriver();
    try {
      await finished(driver, 150, 2 * DAY);
      await finished(driver, 5, 60_000);
      const { code, stdout, stderr } = runCli([
        'prune',
        '--older-than',
        '1d',
        '--db',
        path,
        '--batch',
        '100',
      ]);
      expect(code).toBe(0);
      expect(stdout).toMatch(/pruned 300 task\(s\) finished more than 1d ago/);
      expect(stderr).toMatch(/\[#{30}\] 300\/300 \(100%\)/);
      expect((await driver.countTasks()).byStatus).toMatchObject({ completed: 5, failed: 5 });
      const bad = runCli(['prune', '--older-than', 'yesterday', '--db', path]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--older-than: expected a duration/);
    } finally {
      await cleanup();
    }
  });
});
