/**
 * Time under an injected clock that jumps, on both drivers. Neither database's own clock takes
 * part: every statement that compares times (claims against run_at, rescue against
 * lease_expires_at, idempotency windows) is given the app's `now`, so the pool's and the
 * scheduler's injected clocks decide. What is asserted:
 * - leases: after a jump forward of an hour, a live task keeps its lease and an abandoned one is
 *   rescued once; after a jump back, nothing is rescued early, and rescue happens once the clock
 *   passes the lease again;
 * - retry backoff: after a jump back a retry waits until the clock is back at its time (no
 *   earlier, and no later: the stall is the jump's length, not forever);
 * - schedules: an hour's jump forward queues one catch-up tick, not sixty; a jump back queues
 *   nothing twice.
 * A plain unit test (no fault resources): it moves clocks, and waits on the services' signals.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/core/task.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { BUILTIN_HANDLERS } from '../../src/handlers/builtin.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { TaskQueue } from '../../src/queue/queue.js';
import { Scheduler } from '../../src/worker/scheduler.js';
import type { WorkerPool } from '../../src/worker/worker-pool.js';
import type { ContractDriver } from '../contract/driver-contract.js';
import { newTask } from '../support/factories.js';
import { makePool } from '../support/pool.js';
import { isolatedPostgres, postgresSkip, postgresTestUrl } from '../support/postgres.js';
import { ResultLog } from '../support/results.js';
import { Gates, nextSignal, testClock, watch } from '../support/signals.js';
import { isolatedSqlite } from '../support/sqlite.js';

const HOUR = 60 * 60 * 1000;
const LEASE_MS = 300;

const drivers: [string, { skip?: { reason: string }; make: () => Promise<ContractDriver> }][] = [
  ['sqlite', { make: async () => isolatedSqlite() }],
  ['postgres', { skip: postgresSkip(), make: async () => isolatedPostgres(postgresTestUrl() as string) }],
];

describe.each(drivers)('clock jumps (%s)', (_name, { skip, make }) => {
  const suite = skip ? describe.skip : describe;
  suite('', () => {
    let made: ContractDriver;
    let driver: QueueDriver;
    let clock: ReturnType<typeof testClock>;
    const pools: WorkerPool[] = [];
    beforeEach(async () => {
      made = await make();
      driver = made.driver;
      await driver.migrate();
      // A round minute, plus 30 s, so schedule ticks are easy to count.
      clock = testClock(Math.floor(Date.now() / 60_000) * 60_000 + 30_000);
    });
    afterEach(async () => {
      for (const pool of pools.splice(0)) await pool.stop({ graceMs: 1000 });
      await driver.close();
      await made.cleanup();
    });

    const insert = async (action: string, maxAttempts = 3): Promise<TaskRecord> => {
      const now = clock.now();
      const [inserted] = await driver.insertTasks({ tasks: [newTask({ action, maxAttempts }, now)], now });
      return inserted?.task as TaskRecord;
    };
    /** A pool whose `live` tasks wait at a gate, on the suite's clock. */
    const livePool = (gates: Gates, backoff = { baseMs: 20, maxMs: 1000 }) => {
      const pool = makePool(
        driver,
        [
          { action: 'live', handle: () => gates.pass().then(() => 'live done') },
          { action: 'dead', handle: () => 'dead done' },
        ],
        { now: clock.now, leaseMs: LEASE_MS, backoff },
      );
      pools.push(pool);
      return { pool, results: new ResultLog(pool) };
    };
    /** A task claimed by a worker that then died: its lease is never renewed. */
    const abandoned = async () => {
      const task = await insert('dead');
      await driver.claimTasks({ owner: 'dead-worker', limit: 1, now: clock.now(), leaseMs: LEASE_MS });
      return task;
    };
    /** An abandoned task, and a live one held running at a gate by a started pool. */
    const deadAndLive = async () => {
      const dead = await abandoned();
      const gates = new Gates();
      const { pool, results } = livePool(gates);
      const live = await insert('live');
      const beats = watch(pool.leaseKeeper, 'heartbeat');
      pool.start();
      await gates.entered(1);
      return { dead, live, gates, pool, results, beats };
    };

    it('after a jump forward: the live task keeps its lease, the abandoned one is rescued once', async () => {
      const { dead, live, gates, pool, results, beats } = await deadAndLive();
      const rescued = watch(pool.rescuer, 'rescued');
      expect(await pool.rescuer.pass()).toEqual({ requeued: [], failed: [] });

      const jumped = nextSignal(pool.rescuer, 'clockJumped');
      clock.advance(HOUR);
      // Every lease looks an hour expired; the rescuer holds off one lease while heartbeats renew.
      expect(await pool.rescuer.pass()).toEqual({ requeued: [], failed: [] });
      expect((await jumped)[0]).toBeGreaterThan(HOUR - 1000);
      await rescued.until((r) => r.requeued.includes(dead.id), 5000);
      expect(rescued.seen.flatMap(([r]) => [...r.requeued, ...r.failed])).toEqual([dead.id]);
      expect(await pool.rescuer.pass()).toEqual({ requeued: [], failed: [] }); // once only
      expect(beats.seen.flatMap(([b]) => b.lost)).toEqual([]);

      gates.open(0);
      await results.of(live.id, 'completed');
      const requeued = await driver.getTask({ id: dead.id });
      clock.advance(Math.max(0, (requeued?.runAt ?? 0) - clock.now()));
      pool.wake();
      await results.of(dead.id, 'completed');
      expect(await driver.getTask({ id: live.id })).toMatchObject({ status: 'completed', attempts: 1 });
      expect(await driver.getTask({ id: dead.id })).toMatchObject({ status: 'completed', attempts: 2 });
    });

    it('after a jump back: no lease is rescued early; the abandoned one is rescued once the clock passes it', async () => {
      const { dead, live, gates, pool, results, beats } = await deadAndLive();
      clock.advance(-HOUR);
      // Leases renewed at the earlier time, a lease's worth of real time for the rescuer's timer.
      await beats.next((b) => b.renewed === 1);
      for (let i = 0; i < 3; i++) expect(await pool.rescuer.pass()).toEqual({ requeued: [], failed: [] });
      expect(await driver.getTask({ id: dead.id })).toMatchObject({
        status: 'running',
        leaseOwner: 'dead-worker',
      });

      // Back past the abandoned lease: rescued once; the live task was renewed all along.
      const rescued = watch(pool.rescuer, 'rescued');
      clock.advance(HOUR + LEASE_MS + 1);
      await rescued.until((r) => r.requeued.includes(dead.id), 5000);
      expect(rescued.seen.flatMap(([r]) => r.requeued)).toEqual([dead.id]);
      expect(beats.seen.flatMap(([b]) => b.lost)).toEqual([]);
      gates.open(0);
      await results.of(live.id, 'completed');
    });

    it('after a jump back, a retry waits until the clock is back at its time, then runs', async () => {
      let calls = 0;
      const pool = makePool(
        driver,
        [
          {
            action: 'flaky',
            handle: () => {
              if (++calls === 1) throw new Error('first try fails');
              return 'second try';
            },
          },
        ],
        { now: clock.now, leaseMs: LEASE_MS, backoff: { baseMs: 1000, maxMs: 1000 } },
      );
      pools.push(pool);
      const results = new ResultLog(pool);
      const task = await insert('flaky');
      pool.start();
      const retry = await results.of(task.id, 'retry');
      const retryAt = retry.retryAt as number;
      expect(retryAt - clock.now()).toBeGreaterThanOrEqual(500);

      clock.advance(-HOUR);
      const answers = watch(pool.producer, 'claimReturned');
      // Due in an hour and a second now: claims find nothing, however often the pool looks...
      clock.advance(HOUR - 1);
      pool.wake();
      await answers.next();
      expect(calls).toBe(1);
      // ...and it runs once the clock is back at its time.
      clock.advance(retryAt - clock.now());
      pool.wake();
      await results.of(task.id, 'completed');
      expect(await driver.getTask({ id: task.id })).toMatchObject({ status: 'completed', attempts: 2 });
    });

    it('schedules: an hour forward queues one catch-up tick, not sixty; a jump back queues none twice', async () => {
      // The queue's own idempotency window is short; schedule ticks keep theirs (a day).
      const queue = new TaskQueue({
        driver,
        registry: new HandlerRegistry([...BUILTIN_HANDLERS], false),
        defaultMaxAttempts: 3,
        uniqueWindowMs: 1000,
      });
      const schedule = { name: 'minutely', cron: '* * * * *', timezone: 'UTC', action: 'sum', data: {} };
      const scheduler = new Scheduler(queue, [schedule], pino({ level: 'silent' }), 1000, clock.now);
      const ticks = async () =>
        (await driver.listTasks({ action: 'sum', limit: 1000 })).map((t) => t.uniqueKey).sort();
      const minute = (offset: number) =>
        `schedule:minutely:${new Date(Math.floor(clock.now() / 60_000) * 60_000 + offset * 60_000).toISOString()}`;

      // Checks on time, every second: one tick at the minute.
      for (let i = 0; i < 31; i++) {
        clock.advance(1000);
        await scheduler.check();
      }
      expect(await ticks()).toEqual([minute(0)]);
      const first = minute(0);

      // An hour forward: one more task, the latest tick.
      clock.advance(HOUR);
      await scheduler.check();
      const afterJump = [first, minute(0)].sort();
      expect(await ticks()).toEqual(afterJump);

      // An hour back, then on time again through ticks already queued: nothing new.
      clock.advance(-HOUR);
      for (let i = 0; i < 90; i++) {
        clock.advance(1000);
        await scheduler.check();
      }
      expect(await ticks()).toEqual(afterJump);
      // A key given its own window (as tick keys are, a day) keeps it, whatever the queue's own.
      const day = 24 * HOUR;
      const prepared = queue.prepare({ action: 'sum', uniqueKey: 'k', uniqueForMs: day }, clock.now());
      expect(prepared.uniqueUntil).toBe(clock.now() + day);
      await queue.close();
    });
  });
});
