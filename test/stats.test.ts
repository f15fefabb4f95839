/**
 * The stats counters (docs/stats.md) against the truth: after every write path, on both drivers,
 * countTasks() must equal a real GROUP BY over the tasks table and throughput() must equal the
 * finishes the test performed. Then a seeded random walk over all the write paths, concurrent
 * writers on PostgreSQL (whose counters are sharded by connection), and the migration's backfill.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TASK_STATUSES, type NewTask, type TaskRecord, type TaskStatus } from '../src/core/task.js';
import type { LeaseRef, QueueDriver, TaskCounts, ThroughputPoint } from '../src/drivers/driver.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../src/drivers/postgres/migrations.js';
import { PostgresDriver } from '../src/drivers/postgres/postgres-driver.js';
import { MIGRATIONS as SQLITE_MIGRATIONS } from '../src/drivers/sqlite/migrations.js';
import { SqliteDriver } from '../src/drivers/sqlite/sqlite-driver.js';
import { newTask as baseTask } from './support/factories.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from './support/postgres.js';
import { tempDbPath } from './support/temp.js';

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const LEASE = 10_000;

interface GroupRow {
  action: string;
  status: TaskStatus;
  n: number | string;
}

/** A driver on a fresh database, plus a plain connection that counts the slow, certain way. */
interface Harness {
  driver: QueueDriver;
  /** Another driver on the same database (another process, another PostgreSQL connection pool). */
  openPeer: () => QueueDriver;
  groupBy: () => Promise<{ rows: GroupRow[]; oldest: number | null }>;
  /** Runs SQL directly, e.g. to apply only the older migrations. */
  exec: (sql: string) => Promise<void>;
  cleanup: () => Promise<void>;
}

const GROUP_BY = `SELECT action, status, count(*) AS n FROM tasks GROUP BY action, status ORDER BY action, status`;
const OLDEST = `SELECT min(created_at) AS t FROM tasks WHERE status = 'queued'`;

function sqliteHarness(): Harness {
  const { path, cleanup } = tempDbPath();
  let raw: Database.Database | undefined;
  const conn = () => (raw ??= new Database(path));
  return {
    driver: new SqliteDriver({ path }),
    openPeer: () => new SqliteDriver({ path }),
    groupBy: async () => ({
      rows: conn().prepare(GROUP_BY).all() as GroupRow[],
      oldest: (conn().prepare(OLDEST).get() as { t: number | null }).t,
    }),
    exec: async (sql) => void conn().exec(sql),
    cleanup: async () => {
      raw?.close();
      cleanup();
    },
  };
}

function postgresHarness(url: string): Harness {
  const schema = randomSchema();
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  let connected: Promise<unknown> | undefined;
  const query = async <R extends pg.QueryResultRow>(sql: string) => {
    await (connected ??= client.connect());
    return client.query<R>(sql);
  };
  const open = () => new PostgresDriver({ connectionString: url, poolSize: 4, schema });
  return {
    driver: open(),
    openPeer: open,
    groupBy: async () => ({
      rows: (await query<GroupRow>(GROUP_BY)).rows,
      oldest:
        (await query<{ t: string | null }>(OLDEST)).rows.map((r) => (r.t === null ? null : Number(r.t)))[0] ??
        null,
    }),
    exec: async (sql) => void (await query(sql)),
    cleanup: async () => {
      if (connected) await client.end();
      await dropSchema(url, schema);
    },
  };
}

/** What countTasks must say, computed from the GROUP BY rows. */
function expectedCounts({ rows, oldest }: { rows: GroupRow[]; oldest: number | null }): TaskCounts {
  const byStatus = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
  for (const r of rows) byStatus[r.status] += Number(r.n);
  return {
    byStatus,
    byAction: rows.map((r) => ({ action: r.action, status: r.status, count: Number(r.n) })),
    oldestQueuedAt: oldest,
  };
}

const pgUrl = postgresTestUrl();
const drivers: { name: string; make: () => Harness; skip?: { reason: string } }[] = [
  { name: 'sqlite', make: sqliteHarness },
  { name: 'postgres', make: () => postgresHarness(pgUrl as string), skip: postgresSkip() },
];

/** A small seeded PRNG (mulberry32), so a failing random walk can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

for (const { name, make, skip } of drivers) {
  (skip ? describe.skip : describe)(`stats counters: ${name}`, () => {
    let h: Harness;
    let driver: QueueDriver;
    const peers: QueueDriver[] = [];
    /** The test's clock: every write gets a later time, so created_at grows with seq. */
    let clock = T0;
    const tick = (ms = 1) => (clock += ms);
    /** Finishes the test performed, per minute: what throughput() must report. */
    let finishes: Map<number, { completed: number; failed: number }>;
    const finished = (status: 'completed' | 'failed', at: number) => {
      const minute = Math.floor(at / MINUTE) * MINUTE;
      const point = finishes.get(minute) ?? { completed: 0, failed: 0 };
      point[status] += 1;
      finishes.set(minute, point);
    };

    beforeEach(async () => {
      clock = T0;
      finishes = new Map();
      h = make();
      driver = h.driver;
    });
    afterEach(async () => {
      for (const peer of peers.splice(0)) await peer.close();
      await driver.close();
      await h.cleanup();
    });

    const insert = async (overrides: Partial<NewTask> = {}, on = driver): Promise<TaskRecord> => {
      const now = tick();
      const [result] = await on.insertTasks({ tasks: [baseTask({ action: 'a', ...overrides }, now)], now });
      return result!.task;
    };
    const claim = (limit = 10, owner = 'w1', on = driver, now = tick()) =>
      on.claimTasks({ owner, limit, now, leaseMs: LEASE });
    const lease = (t: TaskRecord, owner = 'w1'): LeaseRef => ({
      id: t.id,
      seq: t.seq,
      owner,
      attempt: t.attempts,
    });

    /** countTasks() equals the GROUP BY; throughput() equals the finishes performed. */
    const expectExact = async (label: string) => {
      const truth = expectedCounts(await h.groupBy());
      expect(await driver.countTasks(), label).toEqual(truth);
      const want: ThroughputPoint[] = [...finishes]
        .sort(([a], [b]) => a - b)
        .map(([minute, p]) => ({ minute, ...p }));
      expect(await driver.throughput({ since: 0 }), label).toEqual(want);
    };

    it('stays exact across every write path', async () => {
      await driver.migrate();
      await expectExact('empty');

      // insert, and an idempotency key replayed within its window (no new row)
      const keyed = await insert({ action: 'b', uniqueKey: 'k', uniqueUntil: T0 + 1000 });
      await insert({ action: 'b', uniqueKey: 'k', uniqueUntil: T0 + 1000 });
      for (let i = 0; i < 6; i++) await insert({ action: i % 2 ? 'a' : 'c', maxAttempts: i < 2 ? 1 : 3 });
      await expectExact('insert + dedup replay');
      // a key whose window passed is freed (an UPDATE that changes no status) and reused
      clock = T0 + 2000;
      await insert({ action: 'b', uniqueKey: 'k', uniqueUntil: T0 + 5000 });
      await expectExact('expired key reused');

      // claim (queued -> running), heartbeat and progress (no status change)
      const claimed = await claim(5);
      await driver.extendLeases({
        owner: 'w1',
        seqs: claimed.map((t) => t.seq),
        now: tick(),
        leaseMs: LEASE,
      });
      await driver.setProgress({ ...lease(claimed[0]!), progress: 50, message: 'half' });
      await expectExact('claim, heartbeat, progress');
      const [c1, c2, c3, c4, c5] = claimed;

      // complete; fail with retry; fail final; fail as cancelled
      let now = tick();
      await driver.completeTasks({ completions: [{ ...lease(c1!), result: 1 }], now });
      finished('completed', now);
      await driver.failTasks({
        failures: [{ ...lease(c2!), error: 'x', outcome: 'retry', retryAt: clock + 5 }],
        now: tick(),
      });
      now = tick(MINUTE); // another minute
      await driver.failTasks({ failures: [{ ...lease(c3!), error: 'x', outcome: 'failed' }], now });
      finished('failed', now);
      await driver.failTasks({
        failures: [{ ...lease(c4!), error: 'x', outcome: 'cancelled' }],
        now: tick(),
      });
      await expectExact('complete, fail retry/final/cancelled');
      // a stale ack (already completed) changes nothing
      await driver.completeTasks({ completions: [{ ...lease(c1!), result: 2 }], now: tick() });
      await expectExact('stale ack');

      // release (running -> queued)
      await driver.releaseTasks({ tasks: [lease(c5!)] });
      await expectExact('release');

      // cancel queued; cancel running (a request, then its worker reports it cancelled)
      await driver.cancelTask({ id: keyed.id, now: tick() });
      const [running] = await claim(1);
      await driver.cancelTask({ id: running!.id, now: tick() });
      await expectExact('cancel queued, cancel requested');
      await driver.failTasks({
        failures: [{ ...lease(running!), error: 'cancelled', outcome: 'cancelled' }],
        now: tick(),
      });
      await expectExact('cancel running');

      // retry a failed and a cancelled task (finished -> queued); a finish counted stays counted
      await driver.retryTask({ id: c3!.id, now: tick() });
      await driver.retryTask({ id: keyed.id, now: tick() });
      await driver.retryTask({ id: c1!.id, now: tick() }); // completed: refused
      await expectExact('retry');

      // rescue: an expired lease is requeued, failed when out of attempts, cancelled when asked
      const rescued = await claim(20, 'w2');
      expect(rescued.length).toBeGreaterThan(2);
      const outOfAttempts = rescued.find((t) => t.attempts >= t.maxAttempts);
      await driver.cancelTask({ id: rescued[0]!.id, now: tick() });
      now = tick(LEASE + 1);
      const result = await driver.rescueExpiredLeases({ now });
      for (const id of result.failed) {
        const task = await driver.getTask({ id });
        if (task?.status === 'failed') finished('failed', now);
      }
      expect(result.failed.length + result.requeued.length).toBe(rescued.length);
      expect(result.failed).toContain(rescued[0]!.id);
      if (outOfAttempts) expect(result.failed).toContain(outOfAttempts.id);
      await expectExact('rescue');

      // prune: finished rows deleted, their counts with them; their throughput stays
      const all = { completed: clock + 1, failed: clock + 1, cancelled: clock + 1 };
      expect(await driver.countPrunableTasks({ finishedBefore: all })).toBeGreaterThan(0);
      expect(await driver.pruneTasks({ finishedBefore: all, limit: 2 })).toBe(2);
      await expectExact('prune part');
      await driver.pruneTasks({ finishedBefore: all, limit: 1000 });
      await expectExact('prune all');
      expect((await driver.countTasks()).byStatus).toMatchObject({ completed: 0, failed: 0, cancelled: 0 });
    });

    it('stays exact over a seeded random walk of every write path', async () => {
      await driver.migrate();
      const seed = 20261201;
      const random = prng(seed);
      const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(random() * xs.length)];
      const held: TaskRecord[] = [];
      const heldOf = (owner: string) => held.filter((t) => t.leaseOwner === owner);
      for (let step = 0; step < 160; step++) {
        const r = random();
        const owner = random() < 0.5 ? 'w1' : 'w2';
        let label: string;
        if (r < 0.22) {
          label = 'insert';
          const tasks = Array.from({ length: 1 + Math.floor(random() * 4) }, () =>
            baseTask(
              {
                action: pick(['a', 'b', 'c'])!,
                maxAttempts: 1 + Math.floor(random() * 2),
                uniqueKey: random() < 0.3 ? `k${Math.floor(random() * 4)}` : null,
                uniqueUntil: clock + Math.floor(random() * 200),
              },
              clock,
            ),
          );
          await driver.insertTasks({ tasks, now: tick() });
        } else if (r < 0.42) {
          label = 'claim';
          const got = await claim(1 + Math.floor(random() * 3), owner);
          held.push(...got);
        } else if (r < 0.57) {
          label = 'complete';
          const done = heldOf(owner).slice(0, 2);
          const now = tick();
          await driver.completeTasks({
            completions: done.map((t) => ({ ...lease(t, owner), result: step })),
            now,
          });
          for (const t of done) {
            held.splice(held.indexOf(t), 1);
            if ((await driver.getTask({ id: t.id }))?.status === 'completed') finished('completed', now);
          }
        } else if (r < 0.67) {
          label = 'fail';
          const t = pick(heldOf(owner));
          if (!t) continue;
          held.splice(held.indexOf(t), 1);
          const outcome = pick(['retry', 'failed', 'cancelled'] as const)!;
          const now = tick();
          await driver.failTasks({
            failures: [{ ...lease(t, owner), error: 'e', outcome, retryAt: now }],
            now,
          });
          if (outcome === 'failed' && (await driver.getTask({ id: t.id }))?.status === 'failed')
            finished('failed', now);
        } else if (r < 0.72) {
          label = 'release';
          const t = pick(heldOf(owner));
          if (!t) continue;
          held.splice(held.indexOf(t), 1);
          await driver.releaseTasks({ tasks: [lease(t, owner)] });
        } else if (r < 0.8) {
          label = 'cancel';
          const [t] = await driver.listTasks({ limit: 1, status: pick(['queued', 'running'] as const) });
          if (!t) continue;
          await driver.cancelTask({ id: t.id, now: tick() });
        } else if (r < 0.86) {
          label = 'retry';
          const [t] = await driver.listTasks({
            limit: 1,
            status: pick(['failed', 'cancelled', 'completed'] as const),
          });
          if (!t) continue;
          await driver.retryTask({ id: t.id, now: tick() });
        } else if (r < 0.9) {
          label = 'rescue';
          const now = tick(LEASE + 1);
          const { failed } = await driver.rescueExpiredLeases({ now });
          for (const id of failed)
            if ((await driver.getTask({ id }))?.status === 'failed') finished('failed', now);
          held.splice(0);
        } else if (r < 0.95) {
          label = 'heartbeat';
          await driver.extendLeases({
            owner,
            seqs: heldOf(owner).map((t) => t.seq),
            now: tick(),
            leaseMs: LEASE,
          });
        } else {
          label = 'prune';
          const cut = clock - Math.floor(random() * 50);
          await driver.pruneTasks({
            finishedBefore: { completed: cut, failed: cut, cancelled: cut },
            limit: 3,
          });
        }
        if (random() < 0.05) tick(MINUTE);
        await expectExact(`seed ${seed}, step ${step}: ${label}`);
      }
    });

    it('stays exact with many writers at once', async () => {
      await driver.migrate();
      const writers = [driver, ...Array.from({ length: 3 }, () => h.openPeer())];
      peers.push(...writers.slice(1));
      await Promise.all(
        writers.map(async (w, i) => {
          for (let round = 0; round < 8; round++) {
            const now = T0 + round;
            await w.insertTasks({
              tasks: Array.from({ length: 5 }, (_, k) => baseTask({ action: `a${(i + k) % 3}` }, now)),
              now,
            });
            const got = await w.claimTasks({ owner: `w${i}`, limit: 4, now, leaseMs: LEASE });
            const [first, ...rest] = got;
            if (first)
              await w.failTasks({
                failures: [{ ...lease(first, `w${i}`), error: 'e', outcome: 'retry' }],
                now,
              });
            await w.completeTasks({
              completions: rest.map((t) => ({ ...lease(t, `w${i}`), result: null })),
              now,
            });
            rest.forEach(() => finished('completed', now));
          }
        }),
      );
      await expectExact('concurrent writers');
    });

    it('backfills the counters from the rows already stored when the migration runs', async () => {
      const migrations = name === 'sqlite' ? SQLITE_MIGRATIONS : PG_MIGRATIONS;
      const before = migrations.filter((m) => m.name.includes('stats_counters') === false);
      const statsVersion = migrations.find((m) => m.name.includes('stats_counters'))!.version;
      if (name === 'postgres') {
        const schema = (driver as PostgresDriver).description.match(/schema (\w+)/)![1];
        await h.exec(`CREATE SCHEMA "${schema}"`);
      }
      await h.exec(
        `CREATE TABLE taskq_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
      );
      for (const m of before.filter((m) => m.version < statsVersion)) {
        await h.exec(m.sql);
        await h.exec(`INSERT INTO taskq_migrations VALUES (${m.version}, '${m.name}', 0)`);
      }
      // rows written before the counters existed: queued, running and finished, two actions
      const now = Date.now();
      const seqCol = name === 'sqlite' ? 'seq, ' : '';
      const values = Array.from({ length: 40 }, (_, i) => {
        const status = TASK_STATUSES[i % 5]!;
        const processed = ['completed', 'failed', 'cancelled'].includes(status)
          ? now - (i % 3) * MINUTE
          : 'NULL';
        return `(${name === 'sqlite' ? `${i + 1}, ` : ''}'id${i}', 'x${i % 2}', '{}', '${status}', 0, 3, ${T0 + i}, ${processed})`;
      });
      await h.exec(
        `INSERT INTO tasks (${seqCol}id, action, data, status, run_at, max_attempts, created_at, processed_at) VALUES ${values.join(', ')}`,
      );
      await driver.migrate();
      for (let i = 0; i < 40; i++) {
        const status = TASK_STATUSES[i % 5]!;
        if (status === 'completed' || status === 'failed') finished(status, now - (i % 3) * MINUTE);
      }
      await expectExact('after backfill');
      await insert({ action: 'x0' });
      await expectExact('after backfill and an insert');
    });
  });
}
