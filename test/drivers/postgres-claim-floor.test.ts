/**
 * The PostgreSQL claim floor (src/drivers/postgres/claim-floor.ts): a plain claim starts where the
 * last one ended instead of stepping over every claimed task still in tasks_claimable. These cases
 * check what it saves (index pages read) and each way a task can be queued before the floor: it is
 * still claimed, in claim order, at once or within the full-scan period.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { NewTask, TaskRecord } from '../../src/core/task.js';
import { PostgresDriver } from '../../src/drivers/postgres/postgres-driver.js';
import { claimStatement } from '../../src/drivers/postgres/queries.js';
import { newTask as fixtureTask } from '../support/factories.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from '../support/postgres.js';
import { untilHeard } from '../support/signals.js';

const skip = postgresSkip();
const suite = skip ? describe.skip : describe;
/** Task run_at values are offsets from T0; claims run at NOW, after all of them. */
const T0 = 1_700_000_000_000;
const NOW = T0 + 60_000;
const FULL_SCAN_MS = 1000;

suite('PostgreSQL claim floor', () => {
  const url = postgresTestUrl() as string;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  /** A migrated schema, a driver on a clock the test moves, and a peer (another process). */
  async function setup() {
    const schema = randomSchema();
    cleanups.push(() => dropSchema(url, schema));
    const clock = { ms: 0 };
    const open = (withClock: boolean) =>
      new PostgresDriver({
        connectionString: url,
        poolSize: 4,
        schema,
        ...(withClock && { claimFloor: { fullScanEveryMs: FULL_SCAN_MS, clock: () => clock.ms } }),
      });
    const driver = open(true);
    const peer = open(false);
    cleanups.unshift(async () => {
      await driver.close();
      await peer.close();
    });
    await driver.migrate();
    const admin = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await admin.connect();
    cleanups.unshift(() => admin.end());
    // The driver LISTENs while someone subscribes: this subscription keeps it listening for the
    // whole case (a case's own short subscription would otherwise LISTEN again in the background,
    // and could miss a NOTIFY sent meanwhile). untilHeard returns when it hears the peer (with a
    // task not due before the cases' claims, so it is never claimed).
    const keepListening = driver.on('tasksQueued', () => {});
    cleanups.unshift(async () => keepListening());
    await untilHeard(driver, () => peer.insertTasks({ tasks: [task(10 * 60_000)], now: T0 }));
    return { driver, peer, admin, clock };
  }

  const task = (offsetMs: number, overrides: Partial<NewTask> = {}) =>
    fixtureTask({ action: 'echo', data: { at: offsetMs }, ...overrides, runAt: T0 + offsetMs }, T0);
  const claim = (driver: PostgresDriver, limit = 1, owner = 'w') =>
    driver.claimTasks({ owner, limit, now: NOW, leaseMs: 30_000 });
  const offsets = (tasks: TaskRecord[]) => tasks.map((t) => t.runAt - T0);
  /** Resolves with the next tasksQueued `driver` hears (from a peer: through NOTIFY), within 5 s. */
  const nextQueued = (driver: PostgresDriver) =>
    new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no tasksQueued within 5 s')), 5000);
      const off = driver.on('tasksQueued', (payload) => {
        clearTimeout(timer);
        off();
        resolve(payload);
      });
    });

  it('reads a few index pages where a claim from the front steps over every claimed task', async () => {
    const { driver, admin } = await setup();
    await driver.insertTasks({ tasks: Array.from({ length: 4000 }, (_, i) => task(i)), now: T0 });
    await admin.query('ANALYZE tasks');
    // 3,000 tasks claimed and completed: their entries stay in tasks_claimable until VACUUM.
    let last: TaskRecord | undefined;
    for (let i = 0; i < 30; i++) {
      const claimed = await claim(driver, 100);
      await driver.completeTasks({
        completions: claimed.map((t) => ({
          id: t.id,
          seq: t.seq,
          owner: 'w',
          attempt: t.attempts,
          result: null,
        })),
        now: NOW,
      });
      last = claimed.at(-1);
    }
    expect(last?.runAt).toBe(T0 + 2999);
    const claimablePages = async (statement: { text: string }, values: unknown[]) => {
      await admin.query('BEGIN');
      try {
        const explain = `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement.text}`;
        const { rows } = await admin.query<{ 'QUERY PLAN': unknown }>(explain, values);
        let pages = 0;
        const walk = (node: Record<string, unknown>) => {
          if (node['Index Name'] === 'tasks_claimable') pages += Number(node['Shared Hit Blocks'] ?? 0);
          for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
        };
        walk((rows[0]?.['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
        return pages;
      } finally {
        await admin.query('ROLLBACK');
      }
    };
    const front = await claimablePages(claimStatement('claimTasks', 7), ['x', NOW + 1, NOW]);
    const fromFloor = await claimablePages(claimStatement('claimFromFloor', 7), [
      'x',
      NOW + 1,
      NOW,
      0,
      last!.runAt,
    ]);
    expect(front).toBeGreaterThanOrEqual(10);
    expect(fromFloor).toBeLessThanOrEqual(5);
  });

  it('keeps claim order: higher priorities first, then the floor onward, then lower ones', async () => {
    const { driver } = await setup();
    await driver.insertTasks({
      tasks: [task(1), task(2), task(3), task(4, { priority: -1 })],
      now: T0,
    });
    expect(offsets(await claim(driver))).toEqual([1]);
    await driver.insertTasks({ tasks: [task(50, { priority: 5 })], now: T0 });
    expect(offsets(await claim(driver, 2))).toEqual([50, 2]);
    expect(offsets(await claim(driver, 3))).toEqual([3, 4]);
  });

  it('claims a task whose insert committed after a claim passed its run_at, here or in a peer', async () => {
    const { driver, peer } = await setup();
    await driver.insertTasks({ tasks: [task(10), task(20), task(30)], now: T0 });
    expect(offsets(await claim(driver))).toEqual([10]);
    expect(offsets(await claim(driver))).toEqual([20]);
    // A batch created before the tasks above but committed after them: its event moves the floor back.
    await driver.insertTasks({ tasks: [task(15)], now: T0 });
    expect(offsets(await claim(driver))).toEqual([15]);
    const heard = nextQueued(driver);
    await peer.insertTasks({ tasks: [task(5)], now: T0 });
    expect(await heard).toEqual({ count: 1, earliestRunAt: T0 + 5 });
    expect(offsets(await claim(driver))).toEqual([5]);
    expect(offsets(await claim(driver))).toEqual([30]);
  });

  it('claims a task another process queued again as soon as its announcement says so', async () => {
    const { driver, peer } = await setup();
    await driver.insertTasks({ tasks: [task(1), task(2), task(3)], now: T0 });
    const [first] = await claim(peer, 1, 'peer');
    expect(offsets(await claim(driver))).toEqual([2]);
    const heard = nextQueued(driver);
    await peer.releaseTasks({
      tasks: [{ id: first!.id, seq: first!.seq, owner: 'peer', attempt: first!.attempts }],
    });
    expect(await heard).toEqual({ count: 1, requeued: true });
    expect(offsets(await claim(driver))).toEqual([1]);
  });

  it('claims a task passed while another transaction locked it within the full-scan period', async () => {
    const { driver, admin, clock } = await setup();
    await driver.insertTasks({ tasks: [task(1), task(2), task(3), task(4)], now: T0 });
    await admin.query('BEGIN');
    await admin.query(`SELECT seq FROM tasks WHERE run_at = $1 FOR UPDATE`, [T0 + 1]);
    expect(offsets(await claim(driver))).toEqual([2]);
    await admin.query('COMMIT'); // nothing announced: nothing was queued
    clock.ms += FULL_SCAN_MS - 1;
    expect(offsets(await claim(driver))).toEqual([3]); // from the floor: passes the unlocked task
    clock.ms += 1;
    expect(offsets(await claim(driver))).toEqual([1]); // from the front again
    expect(offsets(await claim(driver))).toEqual([4]);
  });
});
