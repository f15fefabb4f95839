/**
 * The WorkerPool as its users see it (src/service.ts, metrics, bench): the events it announces,
 * and what it holds. Queue semantics (limits, retries, leases, shutdown) are the worker contract,
 * run on every driver: test/contract/worker-contract.ts.
 */
import { expect, it } from 'vitest';
import type { TaskRecord } from '../src/core/task.js';
import type { Outcome } from '../src/worker/executor.js';
import { cleanupAfterEach } from './support/cleanup.js';
import { insert, makePool, newTask, openTestDriver } from './support/pool.js';
import { Gates, testClock, watch } from './support/signals.js';

const defer = cleanupAfterEach();

it('announces claims, starts, finishes, written results and rescues as its public events', async () => {
  const { driver, cleanup } = await openTestDriver();
  defer(cleanup);
  const clock = testClock();
  // A worker claims one task and dies: its lease runs out.
  const [orphan] = await insert(driver, newTask({ action: 'ok' }, clock.now()));
  await driver.claimTasks({ owner: 'dead-worker', limit: 1, now: clock.now(), leaseMs: 1 });
  const [ok, bad] = await insert(
    driver,
    newTask({ action: 'ok' }, clock.now()),
    newTask({ action: 'bad', maxAttempts: 1 }, clock.now()),
  );
  clock.advance(10);
  const gates = new Gates();
  const pool = makePool(
    driver,
    [
      { action: 'ok', handle: () => gates.pass().then(() => 'fine') },
      { action: 'bad', handle: () => Promise.reject(new Error('no')) },
    ],
    { now: clock.now, leaseMs: 300 },
  );
  defer(() => pool.stop({ graceMs: 1000 }));
  const claimed = watch(pool, 'claimed');
  const started = watch(pool, 'taskStarted');
  const finished = watch(pool, 'taskFinished');
  const written = watch(pool, 'resultsWritten');
  const rescued = watch(pool, 'rescued');
  pool.start();
  // The dead worker's task (claimed first, lease long gone) is rescued by this pool's rescuer.
  await rescued.until((r) => r.requeued.includes(orphan!.id));
  // It waits out its retry backoff like any failed attempt, then runs here.
  clock.advance(60_000);
  pool.wake();
  await gates.entered(2);
  expect(pool.held).toEqual({ running: 2, buffered: 0 });
  gates.openAll();
  const ids = (tasks: TaskRecord[]) => tasks.map((t) => t.id).sort();
  await written.until(() => written.seen.reduce((n, [count]) => n + count, 0) >= 3);
  await finished.until(() => finished.seen.length >= 3);
  expect(ids(claimed.seen.flatMap(([tasks]) => tasks))).toEqual(ids([ok!, bad!, orphan!]));
  expect(ids(started.seen.map(([t]) => t))).toEqual(ids([ok!, bad!, orphan!]));
  const outcomes = new Map<string, Outcome['kind']>(finished.seen.map(([t, o]) => [t.id, o.kind]));
  expect(outcomes).toEqual(
    new Map([
      [ok!.id, 'completed'],
      [bad!.id, 'failed'],
      [orphan!.id, 'completed'],
    ]),
  );
  expect(finished.seen.every(([, , ms]) => ms >= 0)).toBe(true);
  expect(pool.health()).toEqual({ ok: true });
  await pool.stop({ graceMs: 1000 });
  expect(pool.health().ok).toBe(false);
});
