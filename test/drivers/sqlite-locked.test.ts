/**
 * SQLite's write lock held for long by another connection: better-sqlite3 waits for it on the
 * main thread, so after one write has waited out the whole busy timeout the next ones wait only
 * LOCKED_WAIT_MS (sqlite-driver.ts, `write`) until a write takes the lock again.
 */
import Database from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import { afterEach, expect, it } from 'vitest';
import { QueueError } from '../../src/core/errors.js';
import { LOCKED_WAIT_MS, SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { newTask } from '../support/pool.js';
import { tempDbPath } from '../support/temp.js';

const BUSY_TIMEOUT_MS = 1000;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** How long an insert took to fail as unavailable (it must fail: the lock is held). */
async function failedInsertMs(driver: SqliteDriver): Promise<number> {
  const t0 = performance.now();
  const err = await driver.insertTasks({ tasks: [newTask()], now: Date.now() }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(QueueError);
  expect((err as QueueError).code).toBe('TQ_ERR_UNAVAILABLE');
  expect((err as QueueError).message).toMatch(/database is locked/);
  return performance.now() - t0;
}

it('waits the whole busy timeout once, then only briefly until a write takes the lock again', async () => {
  const db = tempDbPath();
  const driver = new SqliteDriver({ path: db.path, busyTimeoutMs: BUSY_TIMEOUT_MS });
  cleanups.push(db.cleanup, () => driver.close());
  await driver.migrate();
  const locker = new Database(db.path);
  cleanups.push(() => {
    if (locker.inTransaction) locker.exec('ROLLBACK');
    locker.close();
  });

  locker.exec('BEGIN IMMEDIATE');
  expect(await failedInsertMs(driver)).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS * 0.9);
  // The lock has been held past the timeout: the next writes do not block the event loop for it.
  for (let i = 0; i < 3; i++) expect(await failedInsertMs(driver)).toBeLessThan(BUSY_TIMEOUT_MS / 2);
  locker.exec('ROLLBACK');

  await driver.insertTasks({ tasks: [newTask()], now: Date.now() });
  // A write took the lock: the next wait is the whole busy timeout again.
  locker.exec('BEGIN IMMEDIATE');
  expect(await failedInsertMs(driver)).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS * 0.9);
  locker.exec('ROLLBACK');
  expect(LOCKED_WAIT_MS).toBeLessThan(BUSY_TIMEOUT_MS / 2);
});
