/** SQLite durability: commits a client relies on are fdatasync'd (off the event loop) before they resolve. */
import { afterEach, expect, it } from 'vitest';
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { newTask } from '../support/pool.js';
import { tempDbPath } from '../support/temp.js';

const open: { driver: SqliteDriver; cleanup: () => void }[] = [];
afterEach(async () => {
  for (const { driver, cleanup } of open.splice(0)) {
    await driver.close();
    cleanup();
  }
});
async function driverWith(sync: 'full' | 'normal') {
  const db = tempDbPath();
  const driver = new SqliteDriver({ path: db.path, sync });
  open.push({ driver, cleanup: db.cleanup });
  await driver.migrate();
  return driver;
}

it('syncs the WAL before an insert resolves, and concurrent inserts share syncs', async () => {
  const driver = await driverWith('full');
  const before = driver.walSyncs;
  await driver.insertTasks({ tasks: [newTask({ action: 'a' })], now: Date.now() });
  expect(driver.walSyncs).toBe(before + 1);
  const many = Array.from({ length: 50 }, () =>
    driver.insertTasks({ tasks: [newTask({ action: 'b' })], now: Date.now() }),
  );
  await Promise.all(many);
  const used = driver.walSyncs - before - 1;
  expect(used).toBeGreaterThanOrEqual(1);
  expect(used).toBeLessThan(50); // group commit: far fewer fdatasyncs than commits
});

it('syncs acks, failures, cancels and retries, but not claims', async () => {
  const driver = await driverWith('full');
  await driver.insertTasks({ tasks: [newTask({ action: 'a' }), newTask({ action: 'b' })], now: Date.now() });
  let syncs = driver.walSyncs;
  const [a, b] = await driver.claimTasks({ owner: 'w', limit: 2, now: Date.now(), leaseMs: 10_000 });
  expect(driver.walSyncs).toBe(syncs); // a lost claim is harmless: not synced on its own
  await driver.completeTasks({
    completions: [{ id: a!.id, seq: a!.seq, owner: 'w', attempt: 1, result: 1 }],
    now: Date.now(),
  });
  expect(driver.walSyncs).toBe(++syncs);
  await driver.failTasks({
    failures: [{ id: b!.id, seq: b!.seq, owner: 'w', attempt: 1, error: 'x', outcome: 'failed' }],
    now: Date.now(),
  });
  expect(driver.walSyncs).toBe(++syncs);
  await driver.retryTask({ id: b!.id, now: Date.now() });
  expect(driver.walSyncs).toBe(++syncs);
  await driver.cancelTask({ id: b!.id, now: Date.now() });
  expect(driver.walSyncs).toBe(syncs + 1);
});

it('never syncs with sync: normal', async () => {
  const driver = await driverWith('normal');
  await driver.insertTasks({ tasks: [newTask({ action: 'a' })], now: Date.now() });
  expect(driver.walSyncs).toBe(0);
});
