/**
 * The PostgreSQL driver commits claims, lease renewals, releases and progress without waiting
 * for the WAL flush (postgres-driver.ts, docs/architecture.md). A database crash can undo such a
 * commit: these tests put a task back into the state the undone commit left it in, exactly as
 * crash recovery would (the row as it was before; only the row: the stats counters the same
 * transaction changed would be undone with it, which these tests do not model), and check that what the queue promises still
 * holds: the task runs again (at-least-once), a stale worker's late writes change nothing, and
 * the result that is finally written is kept. They also check that other processes hear of a
 * change only once it is committed, now that announcements follow the commit.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { QueueDriver } from '../../src/drivers/driver.js';
import type { TaskRecord } from '../../src/core/task.js';
import { newTask as fixtureTask } from '../support/factories.js';
import { dropSchema, isolatedPostgres, postgresSkip, postgresTestUrl } from '../support/postgres.js';
import { untilHeard } from '../support/signals.js';

const skip = postgresSkip();
const suite = skip ? describe.skip : describe;
const LEASE_MS = 30_000;
/** Every time in these tests is an offset from T0, the tasks' creation time. */
const T0 = 1_700_000_000_000;
const newTask = () => fixtureTask({ action: 'echo' }, T0);

/** The only element of a one-element answer. */
function only<T>(items: T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

suite('PostgreSQL relaxed commits', () => {
  const url = postgresTestUrl() as string;
  const toClose: QueueDriver[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const d of toClose.splice(0)) await d.close();
    for (const c of cleanups.splice(0)) await c();
  });

  async function setup() {
    const made = isolatedPostgres(url);
    cleanups.push(() => dropSchema(url, made.schema));
    const admin = new pg.Client({ connectionString: url, options: `-c search_path=${made.schema}` });
    await admin.connect();
    cleanups.unshift(() => admin.end());
    toClose.push(made.driver);
    await made.driver.migrate();
    return { driver: made.driver, admin, openPeer: made.openPeer };
  }

  const lease = (task: TaskRecord, owner: string) => ({
    id: task.id,
    seq: task.seq,
    owner,
    attempt: task.attempts,
  });

  it('a claim undone by a crash is a lease expiry: the stale ack writes nothing, the task runs again', async () => {
    const { driver, admin } = await setup();
    const { task } = only(await driver.insertTasks({ tasks: [newTask()], now: T0 }));
    const claimed = only(await driver.claimTasks({ owner: 'a', limit: 1, now: T0 + 1, leaseMs: LEASE_MS }));
    expect(claimed.id).toBe(task.id);

    // Crash recovery without the claim's commit: the row as the insert left it.
    await admin.query(
      `UPDATE tasks SET status = 'queued', attempts = 0, lease_owner = NULL, lease_expires_at = NULL,
                        started_at = NULL WHERE seq = $1`,
      [task.seq],
    );

    // The worker, unaware, renews and acks: neither touches the task.
    const seqs = [claimed.seq];
    expect(await driver.extendLeases({ owner: 'a', seqs, now: T0 + 2, leaseMs: LEASE_MS })).toEqual([]);
    await driver.completeTasks({ completions: [{ ...lease(claimed, 'a'), result: 'stale' }], now: T0 + 3 });
    expect((await driver.getTask({ id: task.id }))?.status).toBe('queued');

    // It is claimed again (attempt 1 again: the lost attempt never happened) and its result kept.
    const again = only(await driver.claimTasks({ owner: 'b', limit: 1, now: T0 + 4, leaseMs: LEASE_MS }));
    expect(again).toMatchObject({ id: task.id, attempts: 1 });
    await driver.completeTasks({ completions: [{ ...lease(again, 'b'), result: 'fresh' }], now: T0 + 5 });
    expect(await driver.getTask({ id: task.id })).toMatchObject({ status: 'completed', result: 'fresh' });
  });

  it('a lease renewal undone by a crash lets the rescuer re-queue the task; the old worker cannot finish it', async () => {
    const { driver, admin } = await setup();
    await driver.insertTasks({ tasks: [newTask()], now: T0 });
    const claimed = only(await driver.claimTasks({ owner: 'a', limit: 1, now: T0 + 1, leaseMs: 100 }));
    const seqs = [claimed.seq];
    await driver.extendLeases({ owner: 'a', seqs, now: T0 + 50, leaseMs: 100 });
    // Recovery without the renewal: the lease ends where the claim set it.
    await admin.query(`UPDATE tasks SET lease_expires_at = $2 WHERE seq = $1`, [claimed.seq, T0 + 101]);

    const rescued = await driver.rescueExpiredLeases({ now: T0 + 120 });
    expect(rescued.requeued).toEqual([claimed.id]);
    const rerun = only(await driver.claimTasks({ owner: 'b', limit: 1, now: T0 + 130, leaseMs: LEASE_MS }));
    expect(rerun).toMatchObject({ id: claimed.id, attempts: 2 });

    // The first worker's late ack and renewal change nothing; the second worker's result stands.
    await driver.completeTasks({ completions: [{ ...lease(claimed, 'a'), result: 'late' }], now: T0 + 140 });
    expect(await driver.extendLeases({ owner: 'a', seqs, now: T0 + 140, leaseMs: LEASE_MS })).toEqual([]);
    await driver.completeTasks({ completions: [{ ...lease(rerun, 'b'), result: 'kept' }], now: T0 + 150 });
    expect(await driver.getTask({ id: claimed.id })).toMatchObject({ status: 'completed', result: 'kept' });
  });

  it('a release undone by a crash leaves the task to its lease: it is rescued, not lost', async () => {
    const { driver, admin } = await setup();
    await driver.insertTasks({ tasks: [newTask()], now: T0 });
    const claimed = only(await driver.claimTasks({ owner: 'a', limit: 1, now: T0 + 1, leaseMs: 100 }));
    await driver.releaseTasks({ tasks: [lease(claimed, 'a')] });
    // Recovery without the release: still running under the claim's lease.
    await admin.query(
      `UPDATE tasks SET status = 'running', attempts = 1, lease_owner = 'a', lease_expires_at = $2,
                        started_at = $3 WHERE seq = $1`,
      [claimed.seq, T0 + 101, T0 + 1],
    );
    expect((await driver.rescueExpiredLeases({ now: T0 + 200 })).requeued).toEqual([claimed.id]);
    expect((await driver.getTask({ id: claimed.id }))?.status).toBe('queued');
  });

  it('other processes hear of a completion only once it is committed', async () => {
    const { driver, openPeer } = await setup();
    const peer = await openPeer();
    toClose.push(peer);
    const { task } = only(await driver.insertTasks({ tasks: [newTask()], now: T0 }));
    const claimed = only(await driver.claimTasks({ owner: 'a', limit: 1, now: T0 + 1, leaseMs: LEASE_MS }));
    const seen = new Promise<TaskRecord | null>((resolve) => {
      peer.on('tasksChanged', ({ ids }) => {
        if (ids.includes(task.id)) resolve(peer.getTask({ id: task.id }));
      });
    });
    // The peer LISTENs in the background: once it hears an insert, it hears completions too.
    await untilHeard(peer, () => driver.insertTasks({ tasks: [newTask()], now: T0 }));
    await driver.completeTasks({ completions: [{ ...lease(claimed, 'a'), result: 'done' }], now: T0 + 2 });
    expect(await seen).toMatchObject({ status: 'completed', result: 'done' });
  });
});
