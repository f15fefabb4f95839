/**
 * The behaviour every QueueDriver owes, run against real databases only. Each driver's test file
 * is one call of `describeDriverContract`. Cases are grouped by driver method; times are explicit
 * (`T0` plus offsets), so no case depends on the wall clock.
 *
 * `makeDriver` returns a driver on a fresh, empty database (not migrated) and `openPeer` opens a
 * second driver on that same database: another process, as far as the driver can tell. The suite
 * closes every driver it was given, then calls `cleanup` to remove the database.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newTask as baseTask } from '../support/factories.js';
import { untilHeard } from '../support/signals.js';
import { asClaimed, type NewTask, type TaskRecord } from '../../src/core/task.js';
import type { ActionLimits, LimitedClaim } from '../../src/core/flow.js';
import type {
  ClaimTasksParams,
  DriverEventName,
  DriverEvents,
  LeaseRef,
  QueueDriver,
} from '../../src/drivers/driver.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface ContractDriver {
  driver: QueueDriver;
  /** Opens another driver on the same database. */
  openPeer: () => Promise<QueueDriver>;
  /** Removes the database; called after the suite has closed its drivers. */
  cleanup: () => Promise<void>;
}

export interface ContractOptions {
  makeDriver: () => Promise<ContractDriver>;
  skip?: { reason: string };
}

const T0 = 1_700_000_000_000;
const LEASE = 10_000;

/** The contract's fixture: fixed times (T0) and nested data, so round trips are checked. */
export function newTask(overrides: Partial<NewTask> = {}): NewTask {
  return baseTask({ action: 'echo', data: { text: 'hello', nested: { n: 1 } }, ...overrides }, T0);
}

/**
 * Records one event of a driver; `next` waits for the next one (a listener may act after the call).
 * A driver emits a call's own events after its commit and before the call resolves (a peer's
 * arrive whenever they are heard), so once a call has resolved, a case with no peer writing can
 * assert that the call emitted nothing without waiting for anything.
 */
function recorder<E extends DriverEventName>(driver: QueueDriver, event: E) {
  const seen: DriverEvents[E][] = [];
  const waiters: ((payload: DriverEvents[E]) => void)[] = [];
  const off = driver.on(event, (payload) => {
    seen.push(payload);
    for (const w of waiters.splice(0)) w(payload);
  });
  return {
    seen,
    off,
    next(timeoutMs = 3000): Promise<DriverEvents[E]> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((payload) => {
          clearTimeout(timer);
          resolve(payload);
        });
      });
    },
  };
}

export function describeDriverContract(name: string, options: ContractOptions): void {
  const suite = options.skip ? describe.skip : describe;
  suite(`driver contract: ${name}`, () => {
    let made: ContractDriver;
    let driver: QueueDriver;
    const peers: QueueDriver[] = [];

    const openPeer = async (): Promise<QueueDriver> => {
      const peer = await made.openPeer();
      peers.push(peer);
      return peer;
    };
    const insert = async (overrides: Partial<NewTask> = {}): Promise<TaskRecord> => {
      const [result] = await driver.insertTasks({ tasks: [newTask(overrides)], now: T0 });
      return result!.task;
    };
    const claim = (limit = 10, now = T0, owner = 'w1', excludeActions?: string[]) =>
      driver.claimTasks({ owner, limit, now, leaseMs: LEASE, excludeActions });
    const claimOne = async (now = T0, owner = 'w1'): Promise<TaskRecord> => {
      const [task] = await claim(1, now, owner);
      if (!task) throw new Error('nothing was claimed');
      return task;
    };
    const leaseOf = (task: TaskRecord, owner = 'w1'): LeaseRef => ({
      id: task.id,
      seq: task.seq,
      owner,
      attempt: task.attempts,
    });
    const statusOf = async (id: string) => (await driver.getTask({ id }))?.status;

    beforeEach(async () => {
      made = await options.makeDriver();
      driver = made.driver;
    });
    afterEach(async () => {
      for (const peer of peers.splice(0)) await peer.close();
      await driver.close();
      await made.cleanup();
    });

    describe('migrate', () => {
      it('applies every migration once; a second run applies nothing', async () => {
        const first = await driver.migrate();
        expect(first.applied.length).toBeGreaterThan(0);
        expect(first.current).toBeGreaterThan(0);
        const second = await driver.migrate();
        expect(second).toEqual({ applied: [], current: first.current });
      });

      it('reports each applied migration through onApplied', async () => {
        const names: string[] = [];
        const result = await driver.migrate({ onApplied: (n) => names.push(n) });
        expect(names).toEqual(result.applied);
      });

      it('applies once when two drivers migrate the same database at once', async () => {
        const peer = await openPeer();
        const [a, b] = await Promise.all([driver.migrate(), peer.migrate()]);
        // One of them applied everything; the other found it done.
        expect([a.applied, b.applied].filter((applied) => applied.length > 0)).toHaveLength(1);
        expect(a.applied.length + b.applied.length).toBeGreaterThan(0);
        expect(a.current).toBe(b.current);
        await insert();
        expect(await peer.listTasks({ limit: 10 })).toHaveLength(1);
      });
    });

    describe('with a migrated database', () => {
      beforeEach(async () => {
        await driver.migrate();
      });

      describe('ping', () => {
        it('resolves while the database answers', async () => {
          await expect(driver.ping()).resolves.toBeUndefined();
        });
      });

      describe('insertTasks', () => {
        it('stores tasks queued and returns them as getTask does, in input order', async () => {
          const tasks = [newTask({ priority: 5 }), newTask({ action: 'sum', data: { a: [1, 2] } })];
          const results = await driver.insertTasks({ tasks, now: T0 });
          expect(results.map((r) => r.inserted)).toEqual([true, true]);
          expect(results.map((r) => r.task.action)).toEqual(tasks.map((t) => t.action));
          for (const { task } of results) {
            expect(task.id).toMatch(UUID_V4);
            expect(await driver.getTask({ id: task.id })).toEqual(task);
            expect(task).toMatchObject({ status: 'queued', attempts: 0, result: null, leaseOwner: null });
          }
          expect(results[1]!.task.seq).toBeGreaterThan(results[0]!.task.seq);
        });

        it('returns the existing task for a unique key used within its window', async () => {
          const first = await insert({ uniqueKey: 'k1', uniqueUntil: T0 + 1000 });
          const [again] = await driver.insertTasks({
            tasks: [newTask({ uniqueKey: 'k1', uniqueUntil: T0 + 2000 })],
            now: T0 + 500,
          });
          expect(again!.inserted).toBe(false);
          expect(again!.task.id).toBe(first.id);
          expect(await driver.listTasks({ limit: 10 })).toHaveLength(1);
        });

        it('deduplicates a unique key repeated within one batch', async () => {
          const tasks = [
            newTask({ uniqueKey: 'k2', uniqueUntil: T0 + 1000 }),
            newTask({ uniqueKey: 'k2', uniqueUntil: T0 + 1000 }),
          ];
          const results = await driver.insertTasks({ tasks, now: T0 });
          expect(results.map((r) => r.inserted)).toEqual([true, false]);
          expect(results[1]!.task.id).toBe(results[0]!.task.id);
        });

        it('keeps input order and deduplication in a large batch mixing keyed and plain tasks', async () => {
          const plain = (n: number) => Array.from({ length: n }, (_, i) => newTask({ data: { i } }));
          const keyed = () => newTask({ uniqueKey: 'mixed', uniqueUntil: T0 + 1000 });
          const tasks = [...plain(40), keyed(), ...plain(30), keyed(), ...plain(5)];
          const results = await driver.insertTasks({ tasks, now: T0 });
          expect(results.filter((r) => !r.inserted).map((r) => r.task.id)).toEqual([results[40]!.task.id]);
          const stored = results.filter((r) => r.inserted).map((r) => r.task);
          expect(stored).toHaveLength(76);
          expect(stored.map((t) => t.seq)).toEqual([...stored.map((t) => t.seq)].sort((a, b) => a - b));
          for (const task of [stored[0]!, stored[39]!, stored[40]!, stored[75]!])
            expect(await driver.getTask({ id: task.id })).toEqual(task);
          expect(await driver.listTasks({ limit: 100 })).toHaveLength(76);
        });

        it('inserts a new task for a unique key whose window has passed', async () => {
          const first = await insert({ uniqueKey: 'k3', uniqueUntil: T0 + 1000 });
          const [later] = await driver.insertTasks({
            tasks: [newTask({ uniqueKey: 'k3', uniqueUntil: T0 + 5000, createdAt: T0 + 1000 })],
            now: T0 + 1000,
          });
          expect(later!.inserted).toBe(true);
          expect(later!.task.id).not.toBe(first.id);
          // and the new task now owns the key
          const [third] = await driver.insertTasks({
            tasks: [newTask({ uniqueKey: 'k3', uniqueUntil: T0 + 9000 })],
            now: T0 + 2000,
          });
          expect(third!.task.id).toBe(later!.task.id);
        });

        it('stores one task when two drivers insert the same unique key at once', async () => {
          const peer = await openPeer();
          const attempt = (d: QueueDriver) =>
            d.insertTasks({ tasks: [newTask({ uniqueKey: 'race', uniqueUntil: T0 + 1000 })], now: T0 });
          const results = (
            await Promise.all([attempt(driver), attempt(peer), attempt(driver), attempt(peer)])
          ).flat();
          expect(results.filter((r) => r.inserted)).toHaveLength(1);
          expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
          expect(await driver.listTasks({ limit: 10 })).toHaveLength(1);
        });

        it('stores all tasks of a batch or none', async () => {
          await insert();
          // The second task breaks a NOT NULL constraint, after the first was written.
          const broken = newTask({ action: null as unknown as string });
          await expect(driver.insertTasks({ tasks: [newTask(), broken], now: T0 })).rejects.toThrow();
          expect(await driver.listTasks({ limit: 10 })).toHaveLength(1);
          const [next] = await driver.insertTasks({ tasks: [newTask()], now: T0 });
          expect(await driver.getTask({ id: next!.task.id })).toMatchObject({ status: 'queued' });
        });

        it('gives every task a distinct UUID v4 that finds it, across batches and drivers', async () => {
          const peer = await openPeer();
          const batches = await Promise.all(
            [driver, peer, driver, peer].map((d) =>
              d.insertTasks({ tasks: Array.from({ length: 50 }, () => newTask()), now: T0 }),
            ),
          );
          const tasks = batches.flat().map((r) => r.task);
          expect(new Set(tasks.map((t) => t.id)).size).toBe(200);
          for (const task of tasks) {
            expect(task.id).toMatch(UUID_V4);
            expect((await peer.getTask({ id: task.id }))?.seq).toBe(task.seq);
          }
        });

        it('emits tasksQueued with the inserted count and earliest run_at, after commit', async () => {
          const peer = await openPeer();
          const visible: TaskRecord[][] = [];
          const looked = new Promise<void>((resolve) => {
            driver.on(
              'tasksQueued',
              () => void peer.listTasks({ limit: 10 }).then((t) => resolve(void visible.push(t))),
            );
          });
          const queued = recorder(driver, 'tasksQueued');
          const next = queued.next();
          const later = newTask({ runAt: T0 + 5000 });
          const inserted = await driver.insertTasks({ tasks: [later, newTask()], now: T0 });
          expect(await next).toEqual({ count: 2, earliestRunAt: T0 });
          await looked;
          expect(visible[0]?.map((t) => t.id).sort()).toEqual(inserted.map((r) => r.task.id).sort());
        });

        it('inserts the tasks a local worker takes as a claim leaves them, in the same commit', async () => {
          const queued = recorder(driver, 'tasksQueued');
          const handoff = { owner: 'w1', leaseMs: LEASE, take: [true, false], now: T0 + 5 };
          const [taken, left] = await driver.insertTasks({
            tasks: [newTask(), newTask()],
            now: T0,
            claim: handoff,
          });
          // Each entry is the task as accepted; `claimed` says the same commit claimed it.
          expect(taken).toMatchObject({ inserted: true, claimed: true, task: { status: 'queued' } });
          expect(left?.claimed).toBeFalsy();
          const stored = await driver.getTask({ id: taken!.task.id });
          expect(stored).toEqual({ ...asClaimed(taken!.task, handoff), data: stored!.data });
          expect(stored).toMatchObject({
            status: 'running',
            attempts: 1,
            leaseOwner: 'w1',
            claimedAt: T0 + 5,
          });
          expect(stored!.leaseExpiresAt).toBe(T0 + 5 + LEASE);
          expect(await statusOf(left!.task.id)).toBe('queued');
          // Counted running at once; announced (to wake claims) only what was queued.
          expect((await driver.countTasks()).byStatus).toMatchObject({ queued: 1, running: 1 });
          expect(queued.seen).toEqual([{ count: 1, earliestRunAt: T0 }]);
          expect((await claim()).map((t) => t.id)).toEqual([left!.task.id]);
          // The lease is a claim's: renewed and completed as one.
          const renewed = await driver.extendLeases({
            owner: 'w1',
            seqs: [stored!.seq],
            now: T0,
            leaseMs: LEASE,
          });
          expect(renewed).toHaveLength(1);
          await driver.completeTasks({ completions: [{ ...leaseOf(stored!), result: 'ok' }], now: T0 + 6 });
          expect(await driver.getTask({ id: stored!.id })).toMatchObject({
            status: 'completed',
            result: 'ok',
          });
        });

        it('leaves a task a local worker would take queued when its action is paused', async () => {
          await driver.pauseAction({ action: 'echo', now: T0 });
          const [paused, other] = await driver.insertTasks({
            tasks: [newTask({ action: 'echo' }), newTask({ action: 'other' })],
            now: T0,
            claim: { owner: 'w1', leaseMs: LEASE, take: [true, true], now: T0 },
          });
          expect(paused?.claimed).toBeFalsy();
          expect(await driver.getTask({ id: paused!.task.id })).toMatchObject({
            status: 'queued',
            attempts: 0,
            leaseOwner: null,
          });
          expect(other?.claimed).toBe(true);
          expect(await statusOf(other!.task.id)).toBe('running');
        });

        it('rescues a task a local worker took and never finished, as any claimed task', async () => {
          const [taken] = await driver.insertTasks({
            tasks: [newTask()],
            now: T0,
            claim: { owner: 'w1', leaseMs: LEASE, take: [true], now: T0 },
          });
          const result = await driver.rescueExpiredLeases({ now: T0 + LEASE + 1 });
          expect(result.requeued).toEqual([taken!.task.id]);
          expect(await driver.getTask({ id: taken!.task.id })).toMatchObject({
            status: 'queued',
            attempts: 1,
          });
          expect((await claimOne(T0 + LEASE + 1, 'w2')).id).toBe(taken!.task.id);
        });

        it('emits nothing when every task was deduplicated', async () => {
          await insert({ uniqueKey: 'k4', uniqueUntil: T0 + 1000 });
          const queued = recorder(driver, 'tasksQueued');
          await driver.insertTasks({
            tasks: [newTask({ uniqueKey: 'k4', uniqueUntil: T0 + 1000 })],
            now: T0,
          });
          expect(queued.seen).toEqual([]);
        });
      });

      describe('getTask', () => {
        it('returns null for an unknown id', async () => {
          await insert();
          expect(await driver.getTask({ id: randomUUID() })).toBeNull();
          expect(await driver.getTask({ id: 'not-a-uuid' })).toBeNull();
          expect(await driver.getTask({ id: randomUUID().toUpperCase() })).toBeNull();
        });

        it('round-trips data, times and flags exactly', async () => {
          const task = newTask({
            data: { s: 'ü → 😀', n: 1.5, b: false, z: null, list: [1, 'two', { three: 3 }] },
            priority: -3,
            runAt: T0 + 123,
            maxAttempts: 7,
            uniqueKey: 'exact',
            uniqueUntil: T0 + 99,
            createdAt: T0 + 1,
          });
          const [inserted] = await driver.insertTasks({ tasks: [task], now: T0 });
          const stored = await driver.getTask({ id: inserted!.task.id });
          expect(stored).toMatchObject({
            id: inserted!.task.id,
            data: task.data,
            priority: -3,
            runAt: T0 + 123,
            maxAttempts: 7,
            uniqueKey: 'exact',
            createdAt: T0 + 1,
            cancelRequested: false,
            startedAt: null,
            processedAt: null,
          });
          expect(typeof stored!.seq).toBe('number');
        });

        it('stores the trace context (or none) and returns it with reads and claims', async () => {
          const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
          const tasks = [newTask({ traceparent, tracestate: 'v=1' }), newTask({ priority: -1 })];
          const results = await driver.insertTasks({ tasks, now: T0 });
          const [traced, plain] = results.map((r) => r.task);
          expect(await driver.getTask({ id: traced!.id })).toMatchObject({ traceparent, tracestate: 'v=1' });
          expect(await driver.getTask({ id: plain!.id })).toMatchObject({
            traceparent: null,
            tracestate: null,
          });
          const claimed = await driver.claimTasks({ owner: 'w', limit: 2, now: T0, leaseMs: 1000 });
          expect(claimed.map((t) => [t.traceparent, t.tracestate])).toEqual([
            [traceparent, 'v=1'],
            [null, null],
          ]);
        });
      });

      describe('listTasks', () => {
        it('lists newest first, up to the limit', async () => {
          const a = await insert();
          const b = await insert();
          const c = await insert();
          expect((await driver.listTasks({ limit: 10 })).map((t) => t.id)).toEqual([c.id, b.id, a.id]);
          expect((await driver.listTasks({ limit: 2 })).map((t) => t.id)).toEqual([c.id, b.id]);
        });

        it('filters by status and by action', async () => {
          const a = await insert({ action: 'x' });
          const b = await insert({ action: 'y' });
          await insert({ action: 'x' });
          await driver.cancelTask({ id: a.id, now: T0 });
          expect((await driver.listTasks({ limit: 10, status: 'cancelled' })).map((t) => t.id)).toEqual([
            a.id,
          ]);
          expect((await driver.listTasks({ limit: 10, action: 'y' })).map((t) => t.id)).toEqual([b.id]);
          const both = await driver.listTasks({ limit: 10, action: 'x', status: 'queued' });
          expect(both).toHaveLength(1);
          expect(both[0]!.id).not.toBe(a.id);
        });

        it('pages with beforeSeq', async () => {
          const ids: string[] = [];
          for (let i = 0; i < 5; i++) ids.push((await insert()).id);
          const first = await driver.listTasks({ limit: 2 });
          const second = await driver.listTasks({ limit: 2, beforeSeq: first[1]!.seq });
          const third = await driver.listTasks({ limit: 2, beforeSeq: second[1]!.seq });
          expect([...first, ...second, ...third].map((t) => t.id)).toEqual(ids.reverse());
        });
      });

      describe('claimTasks', () => {
        it('claims by priority, then run_at, then insertion order', async () => {
          const low = await insert({ priority: 0 });
          const lateHigh = await insert({ priority: 5, runAt: T0 - 10 });
          const earlyHigh = await insert({ priority: 5, runAt: T0 - 20 });
          const sameAsEarly = await insert({ priority: 5, runAt: T0 - 20 });
          const claimed = await claim(10);
          expect(claimed.map((t) => t.id)).toEqual([earlyHigh.id, sameAsEarly.id, lateHigh.id, low.id]);
        });

        it('takes at most limit tasks, and nothing for limit 0', async () => {
          for (let i = 0; i < 3; i++) await insert();
          expect(await claim(0)).toEqual([]);
          expect(await claim(2)).toHaveLength(2);
          expect(await claim(2)).toHaveLength(1);
          expect(await claim(2)).toHaveLength(0);
        });

        it('takes exactly limit tasks for small and large limits, with and without excludeActions', async () => {
          // PostgreSQL writes limits up to 16 into the claim's text and passes larger ones as a
          // parameter (queries.ts, claimStatement): both shapes, each with and without exclusions.
          await driver.insertTasks({
            tasks: Array.from({ length: 90 }, (_, i) => newTask({ action: i % 3 === 0 ? 'b' : 'a' })),
            now: T0,
          });
          expect(await claim(7)).toHaveLength(7);
          expect(await claim(40)).toHaveLength(40);
          const small = await claim(5, T0, 'w1', ['b']);
          const large = await claim(20, T0, 'w1', ['b']);
          expect([...small, ...large].map((t) => t.action)).toEqual(Array(25).fill('a'));
          // Left: 14 of b and 4 of a.
          expect((await claim(20, T0, 'w1', ['a'])).map((t) => t.action)).toEqual(Array(14).fill('b'));
          expect(await claim(20)).toHaveLength(4);
        });

        it('does not claim a task whose run_at is in the future', async () => {
          const later = await insert({ runAt: T0 + 1000 });
          expect(await claim(10, T0)).toEqual([]);
          expect((await claim(10, T0 + 1000)).map((t) => t.id)).toEqual([later.id]);
        });

        it('marks claimed tasks running under a lease and counts the attempt', async () => {
          const task = await insert();
          const [claimed] = await claim(1, T0 + 5, 'owner-a');
          const expected = {
            id: task.id,
            status: 'running',
            attempts: 1,
            leaseOwner: 'owner-a',
            leaseExpiresAt: T0 + 5 + LEASE,
            claimedAt: T0 + 5,
            startedAt: null,
          };
          expect(claimed).toMatchObject(expected);
          expect(await driver.getTask({ id: task.id })).toMatchObject(expected);
        });

        it('skips the actions given in excludeActions', async () => {
          const a = await insert({ action: 'a' });
          await insert({ action: 'b' });
          const c = await insert({ action: 'c' });
          const claimed = await claim(10, T0, 'w1', ['b']);
          expect(claimed.map((t) => t.id).sort()).toEqual([a.id, c.id].sort());
          expect(await claim(10, T0, 'w1', ['b'])).toEqual([]);
          expect((await claim(10, T0, 'w1', [])).map((t) => t.action)).toEqual(['b']);
        });

        it('never returns a task twice to concurrent claimers', async () => {
          const peer = await openPeer();
          await driver.insertTasks({ tasks: Array.from({ length: 60 }, () => newTask()), now: T0 });
          const claimers = Array.from({ length: 6 }, (_, i) => {
            const d = i % 2 === 0 ? driver : peer;
            return (async () => {
              const got: string[] = [];
              for (;;) {
                const batch = await d.claimTasks({ owner: `c${i}`, limit: 4, now: T0, leaseMs: LEASE });
                if (batch.length === 0) return got;
                got.push(...batch.map((t) => t.id));
              }
            })();
          });
          const all = (await Promise.all(claimers)).flat();
          expect(all).toHaveLength(60);
          expect(new Set(all).size).toBe(60);
        });
      });

      describe('claimTasks under flow limits', () => {
        const rated: ActionLimits = { action: 'rated', rateLimit: { perSecond: 10, burst: 2 } };
        const keyed: ActionLimits = { action: 'keyed', concurrencyPerKey: 2 };
        /** A claim under `limits`; `limited` holds what it said it held back. */
        const limitedClaim = async (
          on: QueueDriver,
          limits: ActionLimits[],
          { limit = 10, now = T0, owner = 'w1', excludeActions }: Partial<ClaimTasksParams> = {},
        ) => {
          const limited: LimitedClaim[] = [];
          const tasks = await on.claimTasks({
            owner,
            limit,
            now,
            leaseMs: LEASE,
            excludeActions,
            limits,
            onLimited: (l) => limited.push(...l),
          });
          return { tasks, limited };
        };
        const insertN = async (n: number, overrides: Partial<NewTask>) => {
          const tasks = Array.from({ length: n }, () => newTask(overrides));
          return (await driver.insertTasks({ tasks, now: T0 })).map((r) => r.task);
        };
        const keysOf = (tasks: TaskRecord[]) => tasks.map((t) => t.concurrencyKey).sort();

        it("stores and returns a task's concurrency key", async () => {
          const task = await insert({ concurrencyKey: 'tenant-1' });
          expect(task.concurrencyKey).toBe('tenant-1');
          expect((await driver.getTask({ id: task.id }))?.concurrencyKey).toBe('tenant-1');
          expect((await claimOne()).concurrencyKey).toBe('tenant-1');
          expect((await insert()).concurrencyKey).toBeNull();
        });

        it('a rate limit claims a full bucket at once, then perSecond, in every process', async () => {
          await insertN(10, { action: 'rated' });
          const first = await limitedClaim(driver, [rated]);
          expect(first.tasks).toHaveLength(2); // the burst
          expect(first.limited).toEqual([{ action: 'rated', reason: 'rate_limit', retryAt: T0 + 100 }]);
          const peer = await openPeer();
          // The bucket is in the database: another process finds it empty too.
          expect((await limitedClaim(peer, [rated], { now: T0 + 50 })).tasks).toHaveLength(0);
          // 10 a second: one token per 100 ms, whoever claims.
          expect((await limitedClaim(peer, [rated], { now: T0 + 100 })).tasks).toHaveLength(1);
          expect((await limitedClaim(driver, [rated], { now: T0 + 350 })).tasks).toHaveLength(2);
          // A quiet spell fills the bucket to its burst, no more.
          const later = await limitedClaim(driver, [rated], { now: T0 + 60_000 });
          expect(later.tasks).toHaveLength(2);
          expect((await driver.countTasks()).byStatus.queued).toBe(3);
        });

        it('claims plainly when no limited action has a queued task, and reports nothing', async () => {
          const other = await insertN(3, { action: 'echo' });
          const { tasks, limited } = await limitedClaim(driver, [rated, keyed], { limit: 2 });
          expect(tasks.map((t) => t.id)).toEqual(other.slice(0, 2).map((t) => t.id));
          expect(limited).toEqual([]);
          // Once one is queued, it is claimed under its limit again.
          await insertN(3, { action: 'rated' });
          expect(
            (await limitedClaim(driver, [rated], { limit: 10 })).tasks.map((t) => t.action).sort(),
          ).toEqual(['echo', 'rated', 'rated']);
        });

        it('a rate-limited action does not hold back other actions', async () => {
          await insertN(5, { action: 'rated' });
          const other = await insertN(3, { action: 'echo' });
          const { tasks } = await limitedClaim(driver, [rated], { limit: 10 });
          expect(tasks.filter((t) => t.action === 'echo').map((t) => t.id)).toEqual(other.map((t) => t.id));
          expect(tasks.filter((t) => t.action === 'rated')).toHaveLength(2);
        });

        it('a per-key cap bounds the running tasks of each key, across processes', async () => {
          await insertN(5, { action: 'keyed', concurrencyKey: 'a' });
          await insertN(5, { action: 'keyed', concurrencyKey: 'b' });
          const free = await insertN(3, { action: 'keyed' }); // no key: not capped
          const first = await limitedClaim(driver, [keyed], { limit: 20 });
          expect(keysOf(first.tasks)).toEqual(['a', 'a', 'b', 'b', null, null, null]);
          expect(first.limited).toEqual([{ action: 'keyed', reason: 'concurrency_key' }]);
          const peer = await openPeer();
          expect((await limitedClaim(peer, [keyed], { owner: 'w2' })).tasks).toEqual([]);
          // A finished task frees its key's slot.
          const doneA = first.tasks.find((t) => t.concurrencyKey === 'a') as TaskRecord;
          await driver.completeTasks({ completions: [{ ...leaseOf(doneA), result: null }], now: T0 + 1 });
          const next = await limitedClaim(peer, [keyed], { owner: 'w2', now: T0 + 2 });
          expect(keysOf(next.tasks)).toEqual(['a']);
          expect(free.every((t) => first.tasks.some((c) => c.id === t.id))).toBe(true);
        });

        it('rotates over keys, however many there are, so every key gets its turn', async () => {
          const keys = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
          for (const key of keys) await insertN(2, { action: 'keyed', concurrencyKey: key });
          const once: ActionLimits = { action: 'keyed', concurrencyPerKey: 1 };
          const served: string[] = [];
          for (let round = 0; round < 10; round++) {
            const { tasks } = await limitedClaim(driver, [once], { limit: 4, now: T0 + round });
            served.push(...keysOf(tasks).map(String));
            const completions = tasks.map((t) => ({ ...leaseOf(t), result: null }));
            await driver.completeTasks({ completions, now: T0 + round });
          }
          expect(served.sort()).toEqual(keys);
        });

        it('keeps excludeActions, and the lease and claim fields of the plain claim', async () => {
          await insert({ action: 'paused' });
          const task = await insert({ action: 'rated' });
          const { tasks } = await limitedClaim(driver, [rated], { excludeActions: ['paused'], now: T0 + 5 });
          expect(tasks.map((t) => t.id)).toEqual([task.id]);
          expect(tasks[0]).toMatchObject({
            status: 'running',
            attempts: 1,
            leaseOwner: 'w1',
            leaseExpiresAt: T0 + 5 + LEASE,
            claimedAt: T0 + 5,
          });
          expect((await driver.getTask({ id: task.id }))?.status).toBe('running');
          expect((await driver.countTasks()).byStatus).toMatchObject({ queued: 1, running: 1 });
        });
      });

      describe('started_at', () => {
        it('is null for a claimed task until its start is reported by a renewal', async () => {
          const task = await insert();
          const claimed = await claimOne(T0 + 5, 'me');
          expect(await driver.getTask({ id: task.id })).toMatchObject({ claimedAt: T0 + 5, startedAt: null });
          const renew = (now: number, startedAt?: number) =>
            driver.extendLeases({
              owner: 'me',
              seqs: [claimed.seq],
              now,
              leaseMs: LEASE,
              started: startedAt === undefined ? [] : [{ seq: claimed.seq, startedAt }],
            });
          // Buffered, not started: the renewal leaves started_at alone.
          await renew(T0 + 10);
          expect((await driver.getTask({ id: task.id }))!.startedAt).toBeNull();
          await renew(T0 + 30, T0 + 20);
          expect(await driver.getTask({ id: task.id })).toMatchObject({
            claimedAt: T0 + 5,
            startedAt: T0 + 20,
          });
          // The first reported start stays.
          await renew(T0 + 50, T0 + 40);
          expect((await driver.getTask({ id: task.id }))!.startedAt).toBe(T0 + 20);
        });

        it('is written with a completion or a failure that carries it', async () => {
          const done = await insert();
          const failed = await insert();
          const [a, b] = await claim(2, T0, 'me');
          const byId = new Map([a!, b!].map((t) => [t.id, t]));
          await driver.completeTasks({
            completions: [{ ...leaseOf(byId.get(done.id)!, 'me'), result: 1, startedAt: T0 + 7 }],
            now: T0 + 9,
          });
          await driver.failTasks({
            failures: [
              { ...leaseOf(byId.get(failed.id)!, 'me'), error: 'x', outcome: 'failed', startedAt: T0 + 8 },
            ],
            now: T0 + 9,
          });
          expect(await driver.getTask({ id: done.id })).toMatchObject({ claimedAt: T0, startedAt: T0 + 7 });
          expect(await driver.getTask({ id: failed.id })).toMatchObject({ claimedAt: T0, startedAt: T0 + 8 });
        });

        it('is cleared, with claimed_at, when a task is given back unspent', async () => {
          const task = await insert();
          const claimed = await claimOne(T0, 'me');
          await driver.releaseTasks({ tasks: [leaseOf(claimed, 'me')] });
          expect(await driver.getTask({ id: task.id })).toMatchObject({ claimedAt: null, startedAt: null });
        });
      });

      describe('completeTasks', () => {
        it('stores the result and finishes the task', async () => {
          const task = await insert();
          const claimed = await claimOne();
          await driver.completeTasks({
            completions: [{ ...leaseOf(claimed), result: { ok: [1, 2] } }],
            now: T0 + 50,
          });
          expect(await driver.getTask({ id: task.id })).toMatchObject({
            status: 'completed',
            result: { ok: [1, 2] },
            processedAt: T0 + 50,
            leaseOwner: null,
            leaseExpiresAt: null,
          });
        });

        it('stores any JSON result, NUL characters included, without failing the batch', async () => {
          await insert();
          await insert();
          const [a, b] = await claim(2);
          const odd = { text: 'nul:\u0000 end', z: 1, a: [{}, []], emoji: '😀' };
          await driver.completeTasks({
            completions: [
              { ...leaseOf(a!), result: odd },
              { ...leaseOf(b!), result: 'plain' },
            ],
            now: T0,
          });
          expect((await driver.getTask({ id: a!.id }))!.result).toEqual(odd);
          expect(await statusOf(b!.id)).toBe('completed');
        });

        it('writes a batch of completions at once, including a null result', async () => {
          await insert();
          await insert();
          const [a, b] = await claim(2);
          await driver.completeTasks({
            completions: [
              { ...leaseOf(a!), result: 'done' },
              { ...leaseOf(b!), result: null },
            ],
            now: T0 + 1,
          });
          expect(await driver.getTask({ id: a!.id })).toMatchObject({ status: 'completed', result: 'done' });
          expect(await driver.getTask({ id: b!.id })).toMatchObject({ status: 'completed', result: null });
        });

        it('writes nothing for a stale owner or attempt, and emits nothing for it', async () => {
          await insert();
          const claimed = await claimOne();
          const changed = recorder(driver, 'tasksChanged');
          await driver.completeTasks({
            completions: [
              { ...leaseOf(claimed, 'someone-else'), result: 1 },
              { ...leaseOf(claimed), attempt: claimed.attempts + 1, result: 2 },
            ],
            now: T0 + 1,
          });
          expect(await driver.getTask({ id: claimed.id })).toMatchObject({ status: 'running', result: null });
          expect(changed.seen).toEqual([]);
        });

        it('emits tasksChanged with the ids, after commit', async () => {
          const peer = await openPeer();
          await insert();
          const claimed = await claimOne();
          const statuses: (string | undefined)[] = [];
          const looked = new Promise<void>((resolve) => {
            driver.on('tasksChanged', () => {
              void peer.getTask({ id: claimed.id }).then((t) => resolve(void statuses.push(t?.status)));
            });
          });
          const changed = recorder(driver, 'tasksChanged');
          const next = changed.next();
          await driver.completeTasks({ completions: [{ ...leaseOf(claimed), result: 1 }], now: T0 + 1 });
          expect(await next).toEqual({ ids: [claimed.id] });
          await looked;
          expect(statuses).toEqual(['completed']);
        });
      });

      describe('failTasks', () => {
        it('retry: queued again at retryAt, with the error kept', async () => {
          await insert();
          const claimed = await claimOne();
          const queued = recorder(driver, 'tasksQueued');
          const next = queued.next();
          await driver.failTasks({
            failures: [{ ...leaseOf(claimed), error: 'boom', outcome: 'retry', retryAt: T0 + 5000 }],
            now: T0 + 10,
          });
          expect(await next).toEqual({ count: 1, requeued: true });
          expect(await driver.getTask({ id: claimed.id })).toMatchObject({
            status: 'queued',
            error: 'boom',
            runAt: T0 + 5000,
            attempts: 1,
            processedAt: null,
            leaseOwner: null,
          });
          expect(await claim(10, T0 + 4999)).toEqual([]);
          expect((await claim(10, T0 + 5000)).map((t) => t.attempts)).toEqual([2]);
        });

        it('failed and cancelled: finished with the error', async () => {
          await insert();
          await insert();
          const [a, b] = await claim(2);
          const queued = recorder(driver, 'tasksQueued');
          const changed = recorder(driver, 'tasksChanged');
          const next = changed.next();
          await driver.failTasks({
            failures: [
              { ...leaseOf(a!), error: 'bad input', outcome: 'failed' },
              { ...leaseOf(b!), error: 'cancelled by request', outcome: 'cancelled' },
            ],
            now: T0 + 20,
          });
          expect((await next).ids.sort()).toEqual([a!.id, b!.id].sort());
          expect(await driver.getTask({ id: a!.id })).toMatchObject({
            status: 'failed',
            error: 'bad input',
            processedAt: T0 + 20,
          });
          expect(await driver.getTask({ id: b!.id })).toMatchObject({
            status: 'cancelled',
            processedAt: T0 + 20,
          });
          expect(queued.seen).toEqual([]);
        });

        it('stores an error message holding a NUL character', async () => {
          await insert();
          const claimed = await claimOne();
          await driver.failTasks({
            failures: [{ ...leaseOf(claimed), error: 'before\u0000after', outcome: 'failed' }],
            now: T0,
          });
          const { status, error } = (await driver.getTask({ id: claimed.id }))!;
          expect(status).toBe('failed');
          expect(error).toMatch(/^before.after$/);
        });

        it('writes nothing for a stale owner or attempt, and emits nothing for it', async () => {
          await insert();
          const claimed = await claimOne();
          const queued = recorder(driver, 'tasksQueued');
          const changed = recorder(driver, 'tasksChanged');
          await driver.failTasks({
            failures: [
              { ...leaseOf(claimed, 'other'), error: 'x', outcome: 'failed' },
              { ...leaseOf(claimed), attempt: 0, error: 'y', outcome: 'retry', retryAt: T0 },
            ],
            now: T0,
          });
          expect(await driver.getTask({ id: claimed.id })).toMatchObject({ status: 'running', error: null });
          expect([...queued.seen, ...changed.seen]).toEqual([]);
        });
      });

      describe('extendLeases', () => {
        it('renews the named running tasks of the owner and returns them', async () => {
          await insert();
          await insert();
          await insert();
          await insert();
          const mine = await claim(2, T0, 'me');
          const theirs = await claim(1, T0, 'other');
          const [forgotten] = await claim(1, T0, 'me');
          // Another owner's task named by mistake is not renewed; an unnamed one of mine is not either.
          const seqs = [...mine, ...theirs].map((t) => t.seq);
          const held = await driver.extendLeases({ owner: 'me', seqs, now: T0 + 3000, leaseMs: LEASE });
          expect(held.map((h) => h.id).sort()).toEqual(mine.map((t) => t.id).sort());
          expect(held.every((h) => h.cancelRequested === false)).toBe(true);
          for (const t of mine) {
            expect((await driver.getTask({ id: t.id }))!.leaseExpiresAt).toBe(T0 + 3000 + LEASE);
          }
          expect((await driver.getTask({ id: forgotten!.id }))!.leaseExpiresAt).toBe(T0 + LEASE);
          expect((await driver.getTask({ id: theirs[0]!.id }))!.leaseExpiresAt).toBe(T0 + LEASE);
        });

        it('reports a cancel request and leaves out tasks the owner lost', async () => {
          await insert();
          await insert();
          const [a, b] = await claim(2, T0, 'me');
          await driver.cancelTask({ id: a!.id, now: T0 });
          await driver.completeTasks({ completions: [{ ...leaseOf(b!, 'me'), result: 1 }], now: T0 });
          const seqs = [a!.seq, b!.seq];
          const held = await driver.extendLeases({ owner: 'me', seqs, now: T0 + 1, leaseMs: LEASE });
          expect(held).toEqual([{ id: a!.id, cancelRequested: true }]);
        });
      });

      describe('releaseTasks', () => {
        it('puts tasks back in the queue without counting the attempt', async () => {
          await insert();
          const claimed = await claimOne();
          const queued = recorder(driver, 'tasksQueued');
          const next = queued.next();
          await driver.releaseTasks({ tasks: [leaseOf(claimed)] });
          expect(await next).toEqual({ count: 1, requeued: true });
          expect(await driver.getTask({ id: claimed.id })).toMatchObject({
            status: 'queued',
            attempts: 0,
            leaseOwner: null,
            startedAt: null,
          });
          expect(await claim(1)).toHaveLength(1);
        });

        it('ignores a task the caller no longer holds, and emits nothing for it', async () => {
          await insert();
          const claimed = await claimOne();
          const queued = recorder(driver, 'tasksQueued');
          await driver.releaseTasks({ tasks: [leaseOf(claimed, 'other')] });
          expect(await statusOf(claimed.id)).toBe('running');
          expect(queued.seen).toEqual([]);
        });
      });

      describe('rescueExpiredLeases', () => {
        it('requeues tasks whose lease expired and leaves live leases alone', async () => {
          await insert();
          const expired = await claimOne(T0);
          await insert();
          const live = await claimOne(T0 + LEASE);
          const queued = recorder(driver, 'tasksQueued');
          const next = queued.next();
          const result = await driver.rescueExpiredLeases({ now: T0 + LEASE + 1 });
          expect(result).toEqual({ requeued: [expired.id], failed: [] });
          expect(await next).toEqual({ count: 1, requeued: true });
          expect(await driver.getTask({ id: expired.id })).toMatchObject({
            status: 'queued',
            attempts: 1,
            leaseOwner: null,
            runAt: T0 + LEASE + 1,
          });
          expect((await driver.getTask({ id: expired.id }))!.error).toMatch(/lease expired/);
          expect(await statusOf(live.id)).toBe('running');
        });

        it('fails a task that is out of attempts, and cancels one with a cancel request', async () => {
          await insert({ maxAttempts: 1 });
          const spent = await claimOne();
          await insert();
          const cancelling = await claimOne();
          await driver.cancelTask({ id: cancelling.id, now: T0 });
          const changed = recorder(driver, 'tasksChanged');
          const next = changed.next();
          const result = await driver.rescueExpiredLeases({ now: T0 + LEASE + 1 });
          expect(result.requeued).toEqual([]);
          expect(result.failed.sort()).toEqual([spent.id, cancelling.id].sort());
          expect((await next).ids.sort()).toEqual([spent.id, cancelling.id].sort());
          expect(await driver.getTask({ id: spent.id })).toMatchObject({
            status: 'failed',
            processedAt: T0 + LEASE + 1,
          });
          expect(await statusOf(cancelling.id)).toBe('cancelled');
        });

        it('returns nothing when no lease expired', async () => {
          await insert();
          await claimOne();
          expect(await driver.rescueExpiredLeases({ now: T0 + LEASE })).toEqual({ requeued: [], failed: [] });
        });
      });

      describe('cancelTask', () => {
        it('cancels a queued task at once', async () => {
          const task = await insert();
          const changed = recorder(driver, 'tasksChanged');
          const next = changed.next();
          const { outcome, task: after } = await driver.cancelTask({ id: task.id, now: T0 + 7 });
          expect(outcome).toBe('cancelled');
          expect(after).toMatchObject({ status: 'cancelled', processedAt: T0 + 7 });
          expect(await next).toEqual({ ids: [task.id] });
          expect(await claim(10)).toEqual([]);
        });

        it('asks the worker of a running task to stop, and says so with cancelRequested', async () => {
          await insert();
          const claimed = await claimOne();
          const requested = recorder(driver, 'cancelRequested');
          const next = requested.next();
          const { outcome, task } = await driver.cancelTask({ id: claimed.id, now: T0 });
          expect(outcome).toBe('cancel_requested');
          expect(task).toMatchObject({ status: 'running', cancelRequested: true });
          expect(await next).toEqual({ ids: [claimed.id] });
        });

        it('reports already_finished and not_found', async () => {
          await insert();
          const claimed = await claimOne();
          await driver.completeTasks({ completions: [{ ...leaseOf(claimed), result: 1 }], now: T0 });
          const finished = await driver.cancelTask({ id: claimed.id, now: T0 });
          expect(finished.outcome).toBe('already_finished');
          expect(finished.task?.status).toBe('completed');
          expect(await driver.cancelTask({ id: randomUUID(), now: T0 })).toEqual({
            outcome: 'not_found',
            task: null,
          });
        });
      });

      describe('retryTask', () => {
        it('requeues a failed task from scratch', async () => {
          await insert({ maxAttempts: 1 });
          const claimed = await claimOne();
          await driver.failTasks({
            failures: [{ ...leaseOf(claimed), error: 'boom', outcome: 'failed' }],
            now: T0 + 1,
          });
          const queued = recorder(driver, 'tasksQueued');
          const next = queued.next();
          const { outcome, task } = await driver.retryTask({ id: claimed.id, now: T0 + 100 });
          expect(outcome).toBe('requeued');
          expect(task).toMatchObject({
            status: 'queued',
            attempts: 0,
            error: null,
            runAt: T0 + 100,
            processedAt: null,
          });
          expect(await next).toEqual({ count: 1, requeued: true });
          expect(await claim(1, T0 + 100)).toHaveLength(1);
        });

        it('requeues a cancelled task; refuses queued, running and completed ones', async () => {
          const cancelled = await insert();
          await driver.cancelTask({ id: cancelled.id, now: T0 });
          expect((await driver.retryTask({ id: cancelled.id, now: T0 })).outcome).toBe('requeued');
          const running = await claimOne();
          expect(await driver.retryTask({ id: running.id, now: T0 })).toMatchObject({
            outcome: 'not_retryable',
            task: { status: 'running' },
          });
          const queued = await insert();
          expect((await driver.retryTask({ id: queued.id, now: T0 })).outcome).toBe('not_retryable');
          expect(await driver.retryTask({ id: randomUUID(), now: T0 })).toEqual({
            outcome: 'not_found',
            task: null,
          });
        });
      });

      describe('setProgress', () => {
        it('records progress for the lease holder only, announcing it with tasksChanged', async () => {
          await insert();
          const claimed = await claimOne();
          const changed = recorder(driver, 'tasksChanged');
          await driver.setProgress({ ...leaseOf(claimed), progress: 40, message: 'reading' });
          await driver.setProgress({ ...leaseOf(claimed, 'other'), progress: 90, message: 'stale' });
          expect(changed.seen).toEqual([{ ids: [claimed.id] }]);
          expect(await driver.getTask({ id: claimed.id })).toMatchObject({
            progress: 40,
            progressMessage: 'reading',
          });
        });

        it('is cleared when the task is claimed again', async () => {
          await insert();
          const claimed = await claimOne();
          await driver.setProgress({ ...leaseOf(claimed), progress: 40, message: null });
          await driver.failTasks({
            failures: [{ ...leaseOf(claimed), error: 'x', outcome: 'retry', retryAt: T0 }],
            now: T0,
          });
          const again = await claimOne();
          expect(again).toMatchObject({ progress: null, progressMessage: null, attempts: 2 });
        });
      });

      describe('countTasks', () => {
        it('counts by status and by action, with the oldest queued time', async () => {
          expect(await driver.countTasks()).toEqual({
            byStatus: { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0, blocked: 0 },
            byAction: [],
            oldestQueuedAt: null,
          });
          await insert({ action: 'a', createdAt: T0 + 5 });
          await insert({ action: 'a', createdAt: T0 + 9 });
          await insert({ action: 'b', createdAt: T0 + 1, priority: 9 });
          await claimOne();
          const counts = await driver.countTasks();
          expect(counts.byStatus).toEqual({
            queued: 2,
            running: 1,
            completed: 0,
            failed: 0,
            cancelled: 0,
            blocked: 0,
          });
          expect(counts.byAction).toEqual([
            { action: 'a', status: 'queued', count: 2 },
            { action: 'b', status: 'running', count: 1 },
          ]);
          expect(counts.oldestQueuedAt).toBe(T0 + 5);
        });
      });

      describe('throughput', () => {
        it('counts completed and failed tasks per minute since a time', async () => {
          const minute = 60_000;
          const base = Math.floor(T0 / minute) * minute;
          for (let i = 0; i < 4; i++) await insert({ maxAttempts: 1 });
          const [a, b, c, d] = await claim(4);
          await driver.completeTasks({ completions: [{ ...leaseOf(a!), result: 1 }], now: base + 10 });
          await driver.completeTasks({
            completions: [{ ...leaseOf(b!), result: 1 }],
            now: base + minute + 5,
          });
          await driver.failTasks({
            failures: [{ ...leaseOf(c!), error: 'x', outcome: 'failed' }],
            now: base + 20,
          });
          await driver.failTasks({
            failures: [{ ...leaseOf(d!), error: 'x', outcome: 'cancelled' }],
            now: base + 30,
          });
          expect(await driver.throughput({ since: base })).toEqual([
            { minute: base, completed: 1, failed: 1 },
            { minute: base + minute, completed: 1, failed: 0 },
          ]);
          // Whole minutes (a rollup, docs/stats.md): `since` inside a minute includes all of it.
          expect(await driver.throughput({ since: base + 15 })).toEqual([
            { minute: base, completed: 1, failed: 1 },
            { minute: base + minute, completed: 1, failed: 0 },
          ]);
          expect(await driver.throughput({ since: base + minute })).toEqual([
            { minute: base + minute, completed: 1, failed: 0 },
          ]);
        });
      });

      describe('pruneTasks', () => {
        it('deletes finished tasks older than their cutoff, up to the limit', async () => {
          for (let i = 0; i < 4; i++) await insert({ maxAttempts: 1 });
          const queued = await insert();
          const [a, b, c, d] = await claim(4);
          await driver.completeTasks({ completions: [{ ...leaseOf(a!), result: 1 }], now: T0 + 10 });
          await driver.completeTasks({ completions: [{ ...leaseOf(b!), result: 1 }], now: T0 + 30 });
          await driver.failTasks({
            failures: [{ ...leaseOf(c!), error: 'x', outcome: 'failed' }],
            now: T0 + 10,
          });
          const cutoff = { completed: T0 + 20, failed: T0 + 5, cancelled: T0 + 20 };
          expect(await driver.countPrunableTasks({ finishedBefore: cutoff })).toBe(1);
          expect(await driver.pruneTasks({ finishedBefore: cutoff, limit: 100 })).toBe(1);
          expect(await driver.getTask({ id: a!.id })).toBeNull();
          expect(await statusOf(b!.id)).toBe('completed');
          expect(await statusOf(c!.id)).toBe('failed');
          expect(await statusOf(d!.id)).toBe('running');
          expect(await statusOf(queued.id)).toBe('queued');
          const all = { completed: T0 + 100, failed: T0 + 100, cancelled: T0 + 100 };
          expect(await driver.countPrunableTasks({ finishedBefore: all })).toBe(2);
          expect(await driver.pruneTasks({ finishedBefore: all, limit: 1 })).toBe(1);
          expect(await driver.pruneTasks({ finishedBefore: all, limit: 10 })).toBe(1);
          expect(await driver.pruneTasks({ finishedBefore: all, limit: 10 })).toBe(0);
        });

        it('never issues the id or seq of a pruned task again', async () => {
          await insert({ maxAttempts: 1 });
          const [newest] = await claim(1);
          await driver.completeTasks({ completions: [{ ...leaseOf(newest!), result: 1 }], now: T0 });
          const all = { completed: T0 + 1, failed: T0 + 1, cancelled: T0 + 1 };
          expect(await driver.pruneTasks({ finishedBefore: all, limit: 10 })).toBe(1);
          const next = await insert();
          expect(next.id).not.toBe(newest!.id);
          expect(next.seq).toBeGreaterThan(newest!.seq);
          expect(await driver.getTask({ id: newest!.id })).toBeNull();
        });
      });

      describe('events', () => {
        it('stops calling a listener after it unsubscribes', async () => {
          const queued = recorder(driver, 'tasksQueued');
          queued.off();
          await insert();
          expect(queued.seen).toEqual([]);
        });

        it('reaches other processes when the driver can notify across processes', async (ctx) => {
          if (!driver.capabilities.crossProcessNotify) ctx.skip('the driver cannot notify across processes');
          const peer = await openPeer();
          // The peer's LISTENs run one at a time, in order: once it hears tasksQueued (the
          // second), it is listening for cancel requests too.
          const requested = recorder(peer, 'cancelRequested');
          const queued = recorder(peer, 'tasksQueued');
          await untilHeard(peer, () => insert());
          expect(queued.seen.length).toBeGreaterThan(0);
          const claimed = await claimOne();
          const next = requested.next();
          await driver.cancelTask({ id: claimed.id, now: T0 });
          expect(await next).toEqual({ ids: [claimed.id] });
        });
      });

      // countTasks and throughput read counters the database keeps as rows change (docs/stats.md).
      describe('stats counters', () => {
        it('are unchanged by heartbeats, progress and cancel requests, and go down with pruning', async () => {
          await insert({ action: 'a', maxAttempts: 1 });
          await insert({ action: 'b' });
          const task = await claimOne();
          const before = await driver.countTasks();
          await driver.extendLeases({ owner: 'w1', seqs: [task.seq], now: T0, leaseMs: LEASE });
          await driver.setProgress({ ...leaseOf(task), progress: 10, message: null });
          await driver.cancelTask({ id: task.id, now: T0 });
          expect(await driver.countTasks()).toEqual(before);
          await driver.failTasks({
            failures: [{ ...leaseOf(task), error: 'x', outcome: 'failed' }],
            now: T0,
          });
          expect((await driver.countTasks()).byStatus).toMatchObject({ queued: 1, running: 0, failed: 1 });
          const all = { completed: T0 + 1, failed: T0 + 1, cancelled: T0 + 1 };
          expect(await driver.pruneTasks({ finishedBefore: all, limit: 10 })).toBe(1);
          expect(await driver.countTasks()).toEqual({
            byStatus: { queued: 1, running: 0, completed: 0, failed: 0, cancelled: 0, blocked: 0 },
            byAction: [{ action: 'b', status: 'queued', count: 1 }],
            oldestQueuedAt: T0,
          });
        });

        it('report the oldest queued task as the first inserted one still queued', async () => {
          const first = await insert({ createdAt: T0 + 1 });
          await insert({ createdAt: T0 + 2, priority: 5 });
          await insert({ createdAt: T0 + 3 });
          expect((await driver.countTasks()).oldestQueuedAt).toBe(T0 + 1);
          await driver.cancelTask({ id: first.id, now: T0 });
          expect((await driver.countTasks()).oldestQueuedAt).toBe(T0 + 2);
          await claim(10);
          expect((await driver.countTasks()).oldestQueuedAt).toBeNull();
        });

        it('count each finish in throughput once, kept through retries and pruning', async () => {
          const minute = 60_000;
          const base = Math.floor(T0 / minute) * minute;
          await insert({ maxAttempts: 1 });
          await insert({ maxAttempts: 1 });
          const [a, b] = await claim(2);
          await driver.completeTasks({ completions: [{ ...leaseOf(a!), result: 1 }], now: base + 1 });
          await driver.failTasks({
            failures: [{ ...leaseOf(b!), error: 'x', outcome: 'failed' }],
            now: base + 2,
          });
          // a retried failure that then completes counts both times; a stale ack counts nothing
          await driver.retryTask({ id: b!.id, now: base + minute });
          const again = await claimOne(base + minute);
          await driver.completeTasks({
            completions: [{ ...leaseOf(again), result: 1 }],
            now: base + minute + 1,
          });
          await driver.completeTasks({
            completions: [{ ...leaseOf(a!), result: 2 }],
            now: base + minute + 2,
          });
          const all = {
            completed: base + 2 * minute,
            failed: base + 2 * minute,
            cancelled: base + 2 * minute,
          };
          expect(await driver.pruneTasks({ finishedBefore: all, limit: 10 })).toBe(2);
          expect(await driver.throughput({ since: base })).toEqual([
            { minute: base, completed: 1, failed: 1 },
            { minute: base + minute, completed: 1, failed: 0 },
          ]);
          expect((await driver.countTasks()).byStatus).toMatchObject({ completed: 0, failed: 0 });
        });
      });
    });
  });
}
