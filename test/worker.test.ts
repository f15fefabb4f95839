/** Queue semantics of the worker pool on a real SQLite file: limits, retries, leases, shutdown. */
import { afterEach, describe, expect, it } from 'vitest';
import type { SqliteDriver } from '../src/drivers/sqlite/sqlite-driver.js';
import type { WorkerPool } from '../src/worker/worker-pool.js';
import { eventually } from './support/service.js';
import { gate, insert, insertOne, makePool, newTask, openTestDriver } from './support/pool.js';

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.reverse()) await fn();
  cleanups = [];
});

async function setup() {
  const { driver, cleanup } = await openTestDriver();
  cleanups.push(cleanup);
  return driver;
}
function track(pool: WorkerPool, graceMs = 1000) {
  cleanups.push(() => pool.stop({ graceMs }));
  return pool;
}
const countStatus = async (driver: SqliteDriver, status: string) =>
  (await driver.countTasks()).byStatus[status as 'queued'];

describe('concurrency and prefetch', () => {
  it('runs at most `concurrency` handlers and holds at most `prefetch` more claimed', async () => {
    const driver = await setup();
    await driver.insertTasks({
      tasks: Array.from({ length: 30 }, () => newTask({ action: 'slow' })),
      now: Date.now(),
    });
    let running = 0;
    let maxRunning = 0;
    const gates: (() => void)[] = [];
    const pool = track(
      makePool(driver, [
        {
          action: 'slow',
          handle: async () => {
            running++;
            maxRunning = Math.max(maxRunning, running);
            const g = gate();
            gates.push(g.open);
            await g.promise;
            running--;
          },
        },
      ]),
    );
    let maxClaimBatch = 0;
    pool.on('claimed', (tasks) => (maxClaimBatch = Math.max(maxClaimBatch, tasks.length)));
    pool.start();
    await eventually(() => gates.length === 2);
    // Both slots busy: the pool holds 2 running + 5 prefetched, all claimed in the database.
    await eventually(async () => (await countStatus(driver, 'running')) === 7);
    expect(pool.held).toEqual({ running: 2, buffered: 5 });
    await new Promise((r) => setTimeout(r, 150)); // several poll intervals: still no more claims
    expect(await countStatus(driver, 'running')).toBe(7);

    // Release handlers one by one until everything is done; the limits hold throughout.
    let released = 0;
    while ((await countStatus(driver, 'completed')) < 30) {
      const open = gates[released];
      if (open) {
        open();
        released++;
      }
      await new Promise((r) => setTimeout(r, 5));
      // Held in memory: running + prefetched. (The database may briefly show a few more as
      // running: finished tasks whose acks wait a couple of ms to be written in a batch.)
      expect(pool.held.running + pool.held.buffered).toBeLessThanOrEqual(7);
      expect(pool.held.running).toBeLessThanOrEqual(2);
    }
    expect(maxRunning).toBe(2);
    expect(maxClaimBatch).toBe(7);
  });
});

describe('per-action concurrency', () => {
  it('runs at most `concurrency` tasks of a limited action while other actions use the free slots', async () => {
    const driver = await setup();
    await insert(driver, ...Array.from({ length: 6 }, () => newTask({ action: 'limited' })));
    await insert(driver, ...Array.from({ length: 6 }, () => newTask({ action: 'free' })));
    const running = { limited: 0, free: 0 };
    const max = { limited: 0, free: 0 };
    const gates: (() => void)[] = [];
    const handler = (action: 'limited' | 'free') => async () => {
      running[action]++;
      max[action] = Math.max(max[action], running[action]);
      const g = gate();
      gates.push(g.open);
      await g.promise;
      running[action]--;
    };
    const pool = track(
      makePool(
        driver,
        [
          { action: 'limited', concurrency: 1, handle: handler('limited') },
          { action: 'free', handle: handler('free') },
        ],
        { concurrency: 4, prefetch: 2 },
      ),
    );
    pool.start();
    await eventually(() => gates.length === 4);
    expect(running).toEqual({ limited: 1, free: 3 });
    let released = 0;
    while ((await countStatus(driver, 'completed')) < 12) {
      gates[released]?.();
      if (gates[released]) released++;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(max.limited).toBe(1);
    expect(max.free).toBeGreaterThanOrEqual(3);
  });
});

describe('retries', () => {
  it('retries a failing handler with growing backoff until it succeeds', async () => {
    const driver = await setup();
    const task = await insertOne(driver, newTask({ action: 'flaky', maxAttempts: 3 }));
    const startTimes: number[] = [];
    const pool = track(
      makePool(
        driver,
        [
          {
            action: 'flaky',
            handle: (_t, ctx) => {
              startTimes.push(Date.now());
              if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} failed`);
              return { ok: true };
            },
          },
        ],
        { backoff: { baseMs: 100, maxMs: 1000 }, pollMs: 10 },
      ),
    );
    pool.start();
    const done = await eventually(async () => {
      const t = await driver.getTask({ id: task.id });
      return t?.status === 'completed' ? t : null;
    });
    expect(done.attempts).toBe(3);
    expect(done.result).toEqual({ ok: true });
    expect(done.error).toBeNull();
    // Full jitter with a fixed half: attempt 1 waits >= 50 ms, attempt 2 >= 100 ms.
    expect(startTimes[1]! - startTimes[0]!).toBeGreaterThanOrEqual(45);
    expect(startTimes[2]! - startTimes[1]!).toBeGreaterThanOrEqual(95);
  });

  it('fails the task after max_attempts and keeps the last error', async () => {
    const driver = await setup();
    const task = await insertOne(driver, newTask({ action: 'bad', maxAttempts: 2 }));
    let calls = 0;
    const pool = track(
      makePool(
        driver,
        [
          {
            action: 'bad',
            handle: () => {
              calls++;
              return Promise.reject(new Error(`broken #${calls}`));
            },
          },
        ],
        { pollMs: 10 },
      ),
    );
    pool.start();
    const failed = await eventually(async () => {
      const t = await driver.getTask({ id: task.id });
      return t?.status === 'failed' ? t : null;
    });
    expect(calls).toBe(2);
    expect(failed.attempts).toBe(2);
    expect(failed.error).toBe('broken #2');
    expect(failed.processedAt).not.toBeNull();
  });

  it('aborts a handler that hangs past its timeout and frees its slot', async () => {
    const driver = await setup();
    const [hung, next] = await insert(
      driver,
      newTask({ action: 'hang', maxAttempts: 1 }),
      newTask({ action: 'quick' }),
    );
    let sawAbort = '';
    const pool = track(
      makePool(
        driver,
        [
          {
            action: 'hang',
            timeoutMs: 100,
            handle: (_t, ctx) => {
              ctx.signal.addEventListener(
                'abort',
                () => (sawAbort = String((ctx.signal.reason as Error).message)),
              );
              return new Promise(() => {}); // never settles, ignores the signal
            },
          },
          { action: 'quick', handle: () => 'ok' },
        ],
        { concurrency: 1, prefetch: 0 },
      ),
    );
    pool.start();
    const failed = await eventually(async () => {
      const t = await driver.getTask({ id: hung!.id });
      return t?.status === 'failed' ? t : null;
    });
    expect(failed.error).toBe('timed out after 100 ms');
    expect(sawAbort).toBe('timed out after 100 ms');
    await eventually(async () => (await driver.getTask({ id: next!.id }))?.status === 'completed');
  });
});

describe('leases', () => {
  it('requeues a task whose worker died, and another worker completes it within the lease', async () => {
    const driver = await setup();
    const task = await insertOne(driver, newTask({ action: 'job' }));
    // A worker that claims and then dies: its lease is never renewed.
    const claimed = await driver.claimTasks({
      owner: 'dead-worker',
      limit: 1,
      now: Date.now(),
      leaseMs: 300,
    });
    expect(claimed.map((t) => t.id)).toEqual([task.id]);
    const pool = track(makePool(driver, [{ action: 'job', handle: () => 'done' }], { leaseMs: 300 }));
    const started = Date.now();
    pool.start();
    const done = await eventually(async () => {
      const t = await driver.getTask({ id: task.id });
      return t?.status === 'completed' ? t : null;
    });
    expect(done.attempts).toBe(2);
    expect(done.result).toBe('done');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('renews leases while a handler runs longer than the lease', async () => {
    const driver = await setup();
    const task = await insertOne(driver, newTask({ action: 'long' }));
    const pool = track(
      makePool(
        driver,
        [{ action: 'long', handle: () => new Promise((r) => setTimeout(() => r('finished'), 900)) }],
        {
          leaseMs: 300,
        },
      ),
    );
    pool.start();
    const done = await eventually(async () => {
      const t = await driver.getTask({ id: task.id });
      return t?.status === 'completed' ? t : null;
    });
    expect(done.attempts).toBe(1); // never rescued
    expect(done.result).toBe('finished');
  });

  it('aborts the handler when its lease is lost to the rescuer', async () => {
    const driver = await setup();
    const task = await insertOne(driver, newTask({ action: 'victim', maxAttempts: 1 }));
    let reason = '';
    const started = new Promise<void>((resolve) => {
      const pool = track(
        makePool(
          driver,
          [
            {
              action: 'victim',
              handle: (_t, ctx) =>
                new Promise((_, reject) => {
                  resolve();
                  ctx.signal.addEventListener('abort', () => {
                    reason = (ctx.signal.reason as { kind: string }).kind;
                    reject(ctx.signal.reason);
                  });
                }),
            },
          ],
          { leaseMs: 300 },
        ),
      );
      pool.start();
    });
    await started;
    // Another process's rescuer sees the lease as expired (as if this worker had stalled).
    await driver.rescueExpiredLeases({ now: Date.now() + 60_000 });
    await eventually(() => reason === 'lease_lost');
    const t = await driver.getTask({ id: task.id });
    expect(t?.status).toBe('failed'); // out of attempts, failed by the rescuer, untouched by the old worker
    expect(t?.error).toMatch(/lease expired/);
  });
  it('keeps a task claimed while a heartbeat was on its way', async () => {
    // On PostgreSQL the heartbeat's UPDATE sees the rows as of its start: a claim that commits
    // meanwhile on another pooled connection is missing from its answer, though the lease is fine.
    const driver = await setup();
    const release = gate();
    const aborted: string[] = [];
    const pool = track(
      makePool(
        driver,
        [
          {
            action: 'hold',
            handle: (task, ctx) =>
              new Promise((resolve, reject) => {
                void release.promise.then(() => resolve('done'));
                ctx.signal.addEventListener('abort', () => {
                  aborted.push(task.id);
                  reject(ctx.signal.reason);
                });
              }),
          },
        ],
        { leaseMs: 300 },
      ),
    );
    const first = await insertOne(driver, newTask({ action: 'hold' }));
    let second: { id: string } | undefined;
    const extendLeases = driver.extendLeases.bind(driver);
    driver.extendLeases = async (params) => {
      const held = await extendLeases(params); // the statement's view
      if (!second) {
        const claimed = new Promise((resolve) => pool.once('claimed', resolve));
        second = await insertOne(driver, newTask({ action: 'hold' }));
        await claimed; // the claim answers before the heartbeat does
      }
      return held;
    };
    pool.start();
    await eventually(() => second !== undefined && pool.held.running === 2);
    await eventually(async () => (await countStatus(driver, 'running')) === 2);
    // Give the late heartbeat's answer (and the next ones) time to be judged.
    await new Promise((r) => setTimeout(r, 400));
    release.open();
    await eventually(async () => (await countStatus(driver, 'completed')) === 2);
    expect(aborted).toEqual([]);
    for (const id of [first.id, (second as { id: string }).id]) {
      expect((await driver.getTask({ id }))?.attempts).toBe(1);
    }
  });
});

describe('graceful shutdown', () => {
  it('lets running handlers finish and gives unstarted prefetched tasks back', async () => {
    const driver = await setup();
    const inserted = await driver.insertTasks({
      tasks: Array.from({ length: 4 }, () => newTask({ action: 'work' })),
      now: Date.now(),
    });
    const g = gate();
    const pool = makePool(driver, [{ action: 'work', handle: () => g.promise.then(() => 'finished') }], {
      concurrency: 1,
      prefetch: 3,
    });
    pool.start();
    await eventually(async () => (await countStatus(driver, 'running')) === 4);
    const stopping = pool.stop({ graceMs: 5000 });
    setTimeout(g.open, 100);
    await stopping;
    const tasks = await Promise.all(inserted.map(({ task }) => driver.getTask({ id: task.id })));
    const completed = tasks.filter((t) => t?.status === 'completed');
    const queued = tasks.filter((t) => t?.status === 'queued');
    expect(completed).toHaveLength(1);
    expect(queued).toHaveLength(3);
    expect(queued.every((t) => t?.attempts === 0 && t.leaseOwner === null)).toBe(true);
  });

  it('aborts handlers still running after the grace period and requeues them', async () => {
    const driver = await setup();
    const task = await insertOne(driver, newTask({ action: 'stuck' }));
    let aborted = false;
    const pool = makePool(driver, [
      {
        action: 'stuck',
        handle: (_t, ctx) =>
          new Promise((_, reject) =>
            ctx.signal.addEventListener('abort', () => ((aborted = true), reject(ctx.signal.reason))),
          ),
      },
    ]);
    pool.start();
    await eventually(async () => pool.held.running === 1);
    const t0 = Date.now();
    await pool.stop({ graceMs: 200 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(aborted).toBe(true);
    const t = await driver.getTask({ id: task.id });
    expect(t?.status).toBe('queued');
    expect(t?.attempts).toBe(0);
  });
});
