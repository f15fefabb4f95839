/**
 * Task dependencies and fan-out / fan-in (docs/workflows.md), on both drivers: blocked until the
 * last dependency completes (queued in the same transaction as that completion), failure and
 * cancel cascades, on_dependency_failure, 400s for unknown ids and later batch items, handlers
 * that enqueue children and resume with their results, and a worker killed between enqueuing
 * its children and finishing, which loses nothing and duplicates nothing.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import type { TaskRecord } from '../src/core/task.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../src/drivers/postgres/migrations.js';
import { MIGRATIONS as SQLITE_MIGRATIONS } from '../src/drivers/sqlite/migrations.js';
import { TaskIdCodec } from '../src/drivers/task-ids.js';
import { TaskqNode } from '../src/service.js';
import { BOTH_DRIVERS } from './support/drivers.js';
import { newTask } from './support/factories.js';
import { postgresTestUrl, withSchema } from './support/postgres.js';
import { runCliAsync as runCli, startCli, type RunningService } from './support/process.js';
import { TaskqClient } from '../src/client/index.js';
import { eventually, finished, http as fetchHttp, type HttpResponse } from './support/service.js';

const T0 = 1_700_000_000_000;

/** A `gate` task runs until the test opens it: `gate(id).started`, then `gate(id).open(value)`. */
interface Gate {
  started: Promise<void>;
  markStarted: () => void;
  open: (value: unknown) => void;
}
const gates = new Map<string, Gate>();
/** The fail-first tasks that have failed their first run. */
const failedOnce = new Set<string>();
function gate(id: string): Gate {
  let g = gates.get(id);
  if (!g) {
    let markStarted = () => {};
    const started = new Promise<void>((resolve) => (markStarted = resolve));
    g = { started, markStarted, open: () => {} };
    gates.set(id, g);
  }
  return g;
}

const HANDLERS: HandlerDefinition[] = [
  {
    action: 'gate',
    handle: (task) =>
      new Promise((resolve) => {
        const g = gate(task.id);
        g.open = resolve;
        g.markStarted();
      }),
  },
  { action: 'boom', maxAttempts: 1, handle: () => Promise.reject(new Error('kaput')) },
  {
    // Fails for good on its first run; a retry then runs as a gate (held until the test opens it).
    action: 'fail-first',
    maxAttempts: 1,
    handle: (task) => {
      if (!failedOnce.has(task.id)) {
        failedOnce.add(task.id);
        return Promise.reject(new Error('first run fails'));
      }
      return new Promise((resolve) => {
        const g = gate(task.id);
        g.open = resolve;
        g.markStarted();
      });
    },
  },
  { action: 'echo', handle: (task) => ({ echoed: task.data }) },
  { action: 'square', handle: (task) => ({ squared: Number(task.data.n) ** 2 }) },
  {
    // Fan-out / fan-in: one child per number, then the sum of their results.
    action: 'fanout',
    handle: async (task, ctx) => {
      if (ctx.resumed === 0) {
        for (const n of task.data.numbers as number[]) await ctx.enqueue('square', { n });
        return ctx.waitForChildren();
      }
      const children = await ctx.children();
      return {
        resumed: ctx.resumed,
        sum: children.reduce((s, c) => s + Number((c.result as { squared: number }).squared), 0),
        statuses: children.map((c) => c.status),
      };
    },
  },
  {
    // A child that fails, then a wait: the parent fails with it (or, with "run", sees it failed).
    action: 'fanout-failing',
    handle: async (task, ctx) => {
      if (ctx.resumed === 0) {
        await ctx.enqueue('square', { n: 2 });
        await ctx.enqueue('boom');
        return ctx.waitForChildren();
      }
      return { statuses: (await ctx.children()).map((c) => c.status) };
    },
  },
  {
    // A wait with no child: there is nothing to wait for, so it resolves at once ([]).
    action: 'wait-alone',
    handle: async (task, ctx) => {
      if (task.data.returned) return ctx.waitForChildren();
      const children = await ctx.waitForChildren();
      return { children, resumed: ctx.resumed };
    },
  },
  {
    // Its child depends on the parent itself: waiting for it would never end.
    action: 'fanout-cycle',
    handle: async (task, ctx) => {
      await ctx.enqueue('echo', {}, { dependsOn: [task.id] });
      return ctx.waitForChildren();
    },
  },
];

/** A migrated driver of each kind, with what a test needs to reach its database directly. */
type Made = ReturnType<(typeof BOTH_DRIVERS)[number][1]>;

/** Runs `sql` on the test database beside the driver: SQLite's file, or PostgreSQL's schema. */
async function rawSql(made: Made, sql: string): Promise<void> {
  if ('path' in made) {
    const db = new Database(made.path);
    try {
      db.exec(sql);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: postgresTestUrl() });
  await client.connect();
  try {
    await client.query(`SET search_path = "${made.schema}"`);
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The names of the indexes and triggers on SQLite's tasks table. */
function sqliteSchema(path: string): { index: string[]; trigger: string[] } {
  const db = new Database(path, { readonly: true });
  try {
    const names = (type: string) =>
      (
        db
          .prepare(
            `SELECT name FROM sqlite_master WHERE type = ? AND tbl_name = 'tasks' AND sql IS NOT NULL ORDER BY name`,
          )
          .all(type) as { name: string }[]
      ).map((r) => r.name);
    return { index: names('index'), trigger: names('trigger') };
  } finally {
    db.close();
  }
}

/** A trigger that refuses to release a blocked task: whatever releases one must roll back. */
function refuseRelease(made: Made): string {
  if ('path' in made)
    return `CREATE TRIGGER wf_refuse BEFORE UPDATE OF status ON tasks
              WHEN old.status = 'blocked' AND new.status = 'queued'
              BEGIN SELECT RAISE(ABORT, 'release refused by the test'); END`;
  return `CREATE FUNCTION wf_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'release refused by the test'; END $$;
          CREATE TRIGGER wf_refuse BEFORE UPDATE ON tasks FOR EACH ROW
            WHEN (old.status = 'blocked' AND new.status = 'queued') EXECUTE FUNCTION wf_refuse()`;
}
const allowRelease = (made: Made) =>
  'path' in made ? 'DROP TRIGGER wf_refuse' : 'DROP TRIGGER wf_refuse ON tasks; DROP FUNCTION wf_refuse()';

describe.each(BOTH_DRIVERS)('workflows on %s', (_name, open, skip) => {
  let made: Made;
  let node: TaskqNode | undefined;
  let driver: QueueDriver;
  let running: RunningService[] = [];

  /**
   * A node on a fresh database; `worker: false` makes it an API node (nothing runs); `listen`
   * gives it a port (for the client and the CLI) and resolves with its URL.
   */
  const start = async (worker = true, listen = false) => {
    made = open();
    driver = made.driver;
    const config = resolveConfig(
      {
        logLevel: 'silent',
        db: 'unused.db',
        backoffMs: 0,
        backoffMaxMs: 0,
        pollMs: 10,
        strictActions: true,
        role: worker ? 'all' : 'api',
      },
      {},
    );
    node = await TaskqNode.create({ config, logger: pino({ level: 'silent' }), handlers: HANDLERS, driver });
    if (listen) return node.start();
    await node.app.ready();
    node.startBackground();
    return '';
  };
  afterEach(async () => {
    if (skip) return;
    for (const svc of running) svc.child.kill('SIGKILL');
    running = [];
    for (const g of gates.values()) g.open(null);
    gates.clear();
    await node?.stop();
    node = undefined;
    await made.cleanup();
  });

  const http = async (url: string, method = 'GET', payload?: unknown): Promise<HttpResponse> => {
    const res = await (node as TaskqNode).app.inject({
      method: method as 'GET',
      url,
      ...(payload ? { payload: payload as object } : {}),
    });
    return { status: res.statusCode, headers: new Headers(), body: res.json() };
  };
  const request = (path: string) => http(path);
  const post = async (body: object) => {
    const res = await http('/tasks', 'POST', body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as { id: string; status: string };
  };
  const view = async (id: string) => (await request(`/tasks/${id}`)).body;
  /** A gate task whose handler is running. */
  const runningGate = async () => {
    const { id } = await post({ action: 'gate' });
    await gate(id).started;
    return id;
  };
  const ids = (nodes: { id: string }[]) => nodes.map((n) => n.id).sort();

  describe('depends_on', () => {
    it.skipIf(skip)('waits blocked for its dependencies and is queued when the last completes', async () => {
      await start();
      const a = await runningGate();
      const b = await runningGate();
      const c = await post({ action: 'echo', data: { n: 1 }, depends_on: [a, b] });
      expect(c.status).toBe('blocked');
      expect(await view(c.id)).toMatchObject({ status: 'blocked', pending_dependencies: 2 });
      expect(ids((await view(c.id)).depends_on)).toEqual([a, b].sort());
      expect((await view(a)).dependents).toEqual([
        { id: c.id, action: 'echo', status: 'blocked', pending_dependencies: 2 },
      ]);
      gate(a).open('A');
      expect((await finished(request, a)).status).toBe('completed');
      expect(await view(c.id)).toMatchObject({ status: 'blocked', pending_dependencies: 1 });
      gate(b).open('B');
      expect(await finished(request, c.id)).toMatchObject({
        status: 'completed',
        result: { echoed: { n: 1 } },
        pending_dependencies: 0,
      });
      expect((await view(c.id)).depends_on).toEqual(
        [
          { id: a, action: 'gate', status: 'completed', pending_dependencies: 0 },
          { id: b, action: 'gate', status: 'completed', pending_dependencies: 0 },
        ], // in insertion order
      );
    });

    it.skipIf(skip)('counts a dependency that completed already as met at insert', async () => {
      await start();
      const a = await post({ action: 'echo' });
      await finished(request, a.id);
      const b = await post({ action: 'echo', depends_on: [a.id] });
      expect(b.status).toBe('queued');
      expect((await finished(request, b.id)).status).toBe('completed');
    });

    it.skipIf(skip)(
      'releases a dependent in the same transaction as its last dependency completes',
      async () => {
        await start(false); // an API node: the test claims and completes by hand
        const [x] = await driver.insertTasks({ tasks: [newTask({ action: 'echo' })], now: Date.now() });
        const xId = (x as { task: TaskRecord }).task.id;
        const d = await post({ action: 'echo', depends_on: [xId] });
        const [claimed] = await driver.claimTasks({ owner: 'w', limit: 1, now: Date.now(), leaseMs: 60_000 });
        const { id, seq } = claimed as TaskRecord;
        const ack = {
          completions: [{ id, seq, owner: 'w', attempt: 1, result: { ok: true } }],
          now: Date.now(),
        };
        // A release that cannot be written takes the completion with it, and the reverse.
        await rawSql(made, refuseRelease(made));
        await expect(driver.completeTasks(ack)).rejects.toThrow(/release refused/);
        expect((await driver.getTask({ id: xId }))?.status).toBe('running');
        expect((await driver.getTask({ id: d.id }))?.status).toBe('blocked');
        await rawSql(made, allowRelease(made));
        await driver.completeTasks(ack);
        expect((await driver.getTask({ id: xId }))?.status).toBe('completed');
        expect(await driver.getTask({ id: d.id })).toMatchObject({ status: 'queued', pendingDeps: 0 });
        const counts = (await driver.countTasks()).byStatus;
        expect(counts).toMatchObject({ blocked: 0, queued: 1, completed: 1, running: 0 });
      },
    );

    it.skipIf(skip)('fails its dependents, transitively, when a dependency fails for good', async () => {
      await start();
      const a = await runningGate();
      const failing = await post({ action: 'boom', depends_on: [a] });
      const b = await post({ action: 'echo', depends_on: [failing.id] });
      const c = await post({ action: 'echo', depends_on: [b.id, a] });
      gate(a).open(null);
      expect(await finished(request, failing.id)).toMatchObject({ status: 'failed', error: 'kaput' });
      expect(await finished(request, b.id)).toMatchObject({
        status: 'failed',
        error: `dependency ${failing.id} failed: kaput`,
        attempts: 0,
      });
      expect(await finished(request, c.id)).toMatchObject({
        status: 'failed',
        error: `dependency ${b.id} failed: dependency ${failing.id} failed: kaput`,
      });
      // A new dependent of a task failed for good fails at once.
      const late = await post({ action: 'echo', depends_on: [failing.id] });
      expect(late.status).toBe('failed');
      const counts = (await driver.countTasks()).byStatus;
      expect(counts).toMatchObject({ blocked: 0, failed: 4, completed: 1 });
    });

    it.skipIf(skip)(
      'a retry blocks again, in its transaction, the dependents its failure failed, transitively',
      async () => {
        await start();
        const root = await post({ action: 'fail-first' });
        const b = await post({ action: 'echo', depends_on: [root.id] });
        const c = await post({ action: 'echo', depends_on: [b.id] });
        const d = await post({ action: 'echo', depends_on: [root.id, b.id] }); // a diamond
        const mine = await post({ action: 'echo', depends_on: [root.id] }); // the user retries it first
        const gone = await post({ action: 'echo', depends_on: [root.id] }); // the user deletes it
        for (const t of [c, d, mine, gone]) expect((await finished(request, t.id)).status).toBe('failed');
        expect((await http(`/tasks/${mine.id}/retry`, 'POST')).status).toBe(200);
        expect((await finished(request, mine.id)).status).toBe('completed');
        const deleted = await http('/tasks/bulk', 'POST', { op: 'delete', filter: { id: gone.id } });
        expect([200, 202]).toContain(deleted.status);
        await node?.operations.runOnce();
        expect((await request(`/tasks/${gone.id}`)).status).toBe(404);

        const retried = await http(`/tasks/${root.id}/retry`, 'POST');
        expect(retried.status).toBe(200);
        await gate(root.id).started; // its second run holds: nothing of the cascade can move
        expect(await view(b.id)).toMatchObject({
          status: 'blocked',
          error: null,
          processed_at: null,
          pending_dependencies: 1,
        });
        expect(await view(c.id)).toMatchObject({ status: 'blocked', error: null, pending_dependencies: 1 });
        expect(await view(d.id)).toMatchObject({ status: 'blocked', error: null, pending_dependencies: 2 });
        expect(await view(mine.id)).toMatchObject({ status: 'completed', attempts: 1 }); // left alone
        expect((await driver.countTasks()).byStatus).toMatchObject({ blocked: 3, running: 1, failed: 0 });
        gate(root.id).open('second run');
        for (const t of [b, c, d]) expect((await finished(request, t.id)).status).toBe('completed');
        expect((await driver.countTasks()).byStatus).toMatchObject({ blocked: 0, failed: 0, completed: 5 });
      },
    );

    it.skipIf(skip)(
      'a dependent with another failed dependency stays failed, with that one error',
      async () => {
        await start();
        const x = await post({ action: 'fail-first' });
        const y = await post({ action: 'boom' });
        const z = await post({ action: 'echo', depends_on: [x.id, y.id] });
        expect((await finished(request, x.id)).status).toBe('failed');
        expect((await finished(request, y.id)).status).toBe('failed');
        expect((await finished(request, z.id)).status).toBe('failed');
        await http(`/tasks/${x.id}/retry`, 'POST');
        await gate(x.id).started;
        expect(await view(z.id)).toMatchObject({
          status: 'failed',
          error: `dependency ${y.id} failed: kaput`,
        });
        gate(x.id).open(null);
        expect((await finished(request, x.id)).status).toBe('completed');
        expect((await view(z.id)).status).toBe('failed');
      },
    );

    it.skipIf(skip)('a bulk retry of a cancelled task blocks again the dependents it cancelled', async () => {
      await start();
      const a = await post({ action: 'echo', delay_ms: 3_600_000, data: { bulk: 'cascade' } });
      const b = await post({ action: 'echo', depends_on: [a.id] });
      const c = await post({ action: 'echo', depends_on: [b.id] });
      await http(`/tasks/${a.id}/cancel`, 'POST');
      expect(await view(c.id)).toMatchObject({
        status: 'cancelled',
        error: `dependency ${b.id} was cancelled`,
      });
      const bulk = await http('/tasks/bulk', 'POST', { op: 'retry', filter: { 'data.bulk': 'cascade' } });
      expect([200, 202]).toContain(bulk.status);
      await node?.operations.runOnce();
      // Without the re-block, b and c would stay cancelled for good.
      expect(await finished(request, c.id)).toMatchObject({ status: 'completed', error: null });
      expect((await view(b.id)).status).toBe('completed');
    });

    it.skipIf(skip)('runs a dependent anyway with on_dependency_failure "run"', async () => {
      await start();
      const failing = await post({ action: 'boom' });
      const runs = await post({ action: 'echo', depends_on: [failing.id], on_dependency_failure: 'run' });
      expect(await finished(request, runs.id)).toMatchObject({
        status: 'completed',
        on_dependency_failure: 'run',
      });
    });

    it.skipIf(skip)('cancels blocked dependents, transitively, when a task is cancelled', async () => {
      await start();
      const a = await post({ action: 'echo', delay_ms: 3_600_000 });
      const b = await post({ action: 'echo', depends_on: [a.id] });
      const c = await post({ action: 'echo', depends_on: [b.id] });
      const cancelled = await http(`/tasks/${b.id}/cancel`, 'POST');
      expect(cancelled.status).toBe(200);
      expect(await view(c.id)).toMatchObject({
        status: 'cancelled',
        error: `dependency ${b.id} was cancelled`,
      });
      expect((await view(a.id)).status).toBe('queued');
      await http(`/tasks/${a.id}/cancel`, 'POST');
      expect((await driver.countTasks()).byStatus).toMatchObject({ blocked: 0, queued: 0, cancelled: 3 });
    });

    it.skipIf(skip)('refuses unknown ids and numbers outside a batch with 400, storing nothing', async () => {
      await start();
      const unknown = await http('/tasks', 'POST', {
        action: 'echo',
        depends_on: ['5b1f4a3e-3c5e-4a52-8f2e-2d3c4b5a6e7f'],
      });
      expect(unknown.status).toBe(400);
      expect(unknown.body).toMatchObject({
        code: 'TQ_ERR_VALIDATION',
        error: 'depends_on: task 5b1f4a3e-3c5e-4a52-8f2e-2d3c4b5a6e7f not found',
      });
      const index = await http('/tasks', 'POST', { action: 'echo', depends_on: [0] });
      expect(index.status).toBe(400);
      const bad = await http('/tasks', 'POST', { action: 'echo', on_dependency_failure: 'maybe' });
      expect(bad.status).toBe(400);
      expect((await driver.countTasks()).byStatus.queued + (await driver.countTasks()).byStatus.blocked).toBe(
        0,
      );
    });
  });

  describe('GET /tasks/:id graph', () => {
    it.skipIf(skip)('lists at most 100 of each kind and counts them all, with the parent', async () => {
      await start(false); // an API node: nothing runs, so every task stays as inserted
      const x = await post({ action: 'echo' });
      const many = Array.from({ length: 105 }, (_, i) => ({
        action: 'echo',
        data: { i },
        depends_on: [x.id],
      }));
      const batch = await http('/tasks/batch', 'POST', { tasks: many });
      expect(batch.status).toBe(202);
      const dependentIds = (batch.body as { ids: string[] }).ids;
      const children = await driver.insertTasks({
        tasks: Array.from({ length: 103 }, () => newTask({ action: 'echo', parentId: x.id })),
        now: Date.now(),
      });
      const xView = await view(x.id);
      expect(xView.dependents).toHaveLength(100);
      expect(xView.dependents.map((n: { id: string }) => n.id)).toEqual(dependentIds.slice(0, 100));
      expect(xView.dependents[0]).toEqual({
        id: dependentIds[0],
        action: 'echo',
        status: 'blocked',
        pending_dependencies: 1,
      });
      expect(xView.children).toHaveLength(100);
      expect(xView.graph_counts).toEqual({ depends_on: 0, dependents: 105, children: 103 });
      expect(xView.parent).toBeNull();
      // A task with the most dependencies: a full list, counted.
      const wide = await post({ action: 'echo', depends_on: dependentIds.slice(0, 100) });
      expect((await view(wide.id)).graph_counts).toEqual({ depends_on: 100, dependents: 0, children: 0 });
      const child = (children[0] as { task: TaskRecord }).task;
      expect(await view(child.id)).toMatchObject({
        parent_id: x.id,
        parent: { id: x.id, action: 'echo', status: 'queued', pending_dependencies: 0 },
        graph_counts: { depends_on: 0, dependents: 0, children: 0 },
      });
    });
  });

  describe('concurrency', () => {
    it.skipIf(skip)(
      'inserts that lock their dependencies race acks completing them: no deadlock, each released once',
      { timeout: 120_000 },
      async () => {
        await start(false); // an API node: the test claims and acks by hand, in rounds
        const ROOTS = 240;
        const ROUNDS = 16;
        const PER_ROUND = ROOTS / ROUNDS;
        const INSERTERS = 4;
        const BATCH = 8;
        const inserted = await driver.insertTasks({
          tasks: Array.from({ length: ROOTS }, () => newTask({ action: 'echo' })),
          now: Date.now(),
        });
        const roots = inserted.map((r) => r.task);
        const claimed = await driver.claimTasks({
          owner: 'w',
          limit: ROOTS,
          now: Date.now(),
          leaseMs: 600_000,
        });
        expect(claimed).toHaveLength(ROOTS);
        // A fixed pseudo-random walk, so a failure repeats: dependencies in no particular order.
        let seed = 7;
        const random = (n: number) => {
          seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
          return seed % n;
        };
        const order = [...claimed].sort(() => random(3) - 1);
        const dependents: string[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          const acking = order.slice(round * PER_ROUND, (round + 1) * PER_ROUND);
          // Each item depends on one root acked in this very round, one acked later and one at random.
          const later = order.slice((round + 1) * PER_ROUND);
          const item = () => ({
            action: 'echo',
            depends_on: [
              ...new Set([
                (acking[random(acking.length)] as TaskRecord).id,
                (roots[random(ROOTS)] as TaskRecord).id,
                ...(later.length > 0 ? [(later[random(later.length)] as TaskRecord).id] : []),
              ]),
            ],
          });
          const batches = Array.from({ length: INSERTERS }, () => Array.from({ length: BATCH }, item));
          const ack = driver.completeTasks({
            completions: acking
              .sort(() => random(3) - 1)
              .map((t) => ({ id: t.id, seq: t.seq, owner: 'w', attempt: 1, result: { round } })),
            now: Date.now(),
          });
          const answers = await Promise.all([
            ...batches.map((tasks) => http('/tasks/batch', 'POST', { tasks })),
            ack.then(() => null),
          ]);
          for (const res of answers) {
            if (res === null) continue;
            expect(res.status, JSON.stringify(res.body)).toBe(202);
            dependents.push(...(res.body as { ids: string[] }).ids);
          }
        }
        expect(dependents).toHaveLength(ROUNDS * INSERTERS * BATCH);
        // Every root is completed, so every dependent was released, once: queued with nothing
        // pending (a second release would leave -1), and the counters say the same.
        const rows = await Promise.all(dependents.map((id) => driver.getTask({ id })));
        const states = rows.map((t) => `${t?.status} ${t?.pendingDeps}`);
        expect(new Set(states)).toEqual(new Set(['queued 0']));
        expect((await driver.countTasks()).byStatus).toMatchObject({
          blocked: 0,
          running: 0,
          completed: ROOTS,
          queued: dependents.length,
        });
      },
    );
  });

  describe('POST /tasks/batch', () => {
    it.skipIf(skip)('lets an item depend on earlier items by index, and on existing tasks', async () => {
      await start();
      const a = await runningGate();
      const res = await http('/tasks/batch', 'POST', {
        tasks: [
          { action: 'echo', data: { step: 1 }, depends_on: [a] },
          { action: 'echo', data: { step: 2 }, depends_on: [0] },
          { action: 'echo', data: { step: 3 }, depends_on: [0, 1, a] },
        ],
      });
      expect(res.status).toBe(202);
      const [one, two, three] = res.body.ids as string[];
      expect(ids((await view(three as string)).depends_on)).toEqual([a, one, two].sort());
      expect((await view(two as string)).status).toBe('blocked');
      gate(a).open(null);
      expect((await finished(request, three as string)).status).toBe('completed');
      const times = await Promise.all(
        [one, two, three].map(async (id) => (await view(id as string)).processed_at),
      );
      expect([...times].sort()).toEqual(times); // each after the one it waited for
    });

    it.skipIf(skip)('refuses an item that depends on itself or a later item, storing nothing', async () => {
      await start();
      const res = await http('/tasks/batch', 'POST', {
        tasks: [{ action: 'echo', depends_on: [1] }, { action: 'echo' }, { action: 'echo', depends_on: [2] }],
      });
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: { index: number }) => e.index)).toEqual([0, 2]);
      const unknown = await http('/tasks/batch', 'POST', {
        tasks: [{ action: 'echo' }, { action: 'echo', depends_on: ['nope'] }],
      });
      expect(unknown.status).toBe(400);
      expect((await driver.countTasks()).byStatus.queued).toBe(0);
    });
  });

  describe('ctx.enqueue and ctx.waitForChildren', () => {
    it.skipIf(skip)('fans out, waits blocked, and resumes with the children results', async () => {
      await start();
      const parent = await post({ action: 'fanout', data: { numbers: [1, 2, 3, 4] } });
      const done = await finished(request, parent.id);
      expect(done).toMatchObject({
        status: 'completed',
        attempts: 1,
        result: { resumed: 1, sum: 30, statuses: ['completed', 'completed', 'completed', 'completed'] },
      });
      expect(done.children).toHaveLength(4);
      expect(ids(done.depends_on)).toEqual(ids(done.children));
      const child = await view(done.children[0].id);
      expect(child).toMatchObject({ parent_id: parent.id, status: 'completed' });
      expect(child.dependents).toEqual([
        { id: parent.id, action: 'fanout', status: 'completed', pending_dependencies: 0 },
      ]);
    });

    it.skipIf(skip)(
      'fails the parent with a child that fails for good, unless it runs on failure',
      async () => {
        await start();
        const parent = await post({ action: 'fanout-failing' });
        const failed = await finished(request, parent.id);
        expect(failed.status).toBe('failed');
        const boom = (failed.children as { id: string; action: string }[]).find((c) => c.action === 'boom');
        expect(failed.error).toBe(`dependency ${boom?.id} failed: kaput`);
        const tolerant = await post({ action: 'fanout-failing', on_dependency_failure: 'run' });
        expect(await finished(request, tolerant.id)).toMatchObject({
          status: 'completed',
          result: { statuses: ['completed', 'failed'] },
        });
      },
    );

    it.skipIf(skip)('returns at once from a wait with no children, in the same run', async () => {
      await start();
      const awaited = await post({ action: 'wait-alone' });
      expect(await finished(request, awaited.id)).toMatchObject({
        status: 'completed',
        attempts: 1,
        result: { children: [], resumed: 0 },
        pending_dependencies: 0,
        depends_on: [],
      });
      const returned = await post({ action: 'wait-alone', data: { returned: true } });
      expect(await finished(request, returned.id)).toMatchObject({
        status: 'completed',
        attempts: 1,
        result: [],
      });
      // Never requeued: one attempt each in the history, no wait counted.
      expect((await view(returned.id)).attempt_history).toHaveLength(1);
      expect((await driver.getTask({ id: awaited.id }))?.waits).toBe(0);
    });

    it.skipIf(skip)('fails a wait that would close a cycle instead of blocking forever', async () => {
      await start();
      const parent = await post({ action: 'fanout-cycle' });
      const failed = await finished(request, parent.id);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/^waitForChildren: child [0-9a-f-]+ depends on this task/);
      const child = failed.children[0].id as string;
      expect(await finished(request, child)).toMatchObject({
        status: 'failed',
        error: `dependency ${parent.id} failed: ${failed.error}`,
      });
    });

    it.skipIf(skip)(
      'loses and duplicates nothing when the worker is killed between enqueuing children and finishing',
      { timeout: 60_000 },
      async () => {
        made = open();
        await made.driver.migrate();
        const db = 'path' in made ? made.path : withSchema(postgresTestUrl() ?? '', made.schema);
        const handlers = new URL('./fixtures/workflow-handlers/', import.meta.url).pathname;
        const args = ['--db', db, '--handlers', handlers, '--lease-ms', '1000', '--log-level', 'info'];
        const first = await startCli(args);
        running.push(first);
        const res = await fetchHttp(`${first.url}/tasks`, {
          method: 'POST',
          json: { action: 'fanout', data: { numbers: [1, 2, 3], hang: true } },
        });
        const parent = res.body.id as string;
        // The first run enqueued its three children (each committed alone) and hangs: kill it there.
        await eventually(
          async () => (await fetchHttp(`${first.url}/tasks/${parent}`)).body.children?.length === 3,
        );
        first.child.kill('SIGKILL');
        await first.exited;

        const second = await startCli(args);
        running.push(second);
        const done = await finished((path) => fetchHttp(`${second.url}${path}`), parent);
        expect(done).toMatchObject({ status: 'completed', result: { sum: 14, children: 3 } });
        expect(done.children).toHaveLength(3); // the second run found the first run's children
        const all = await made.driver.countTasks();
        expect(all.byStatus).toMatchObject({ completed: 4, blocked: 0, queued: 0, running: 0, failed: 0 });
        await made.driver.close();
      },
    );
  });

  describe('client and CLI', () => {
    it.skipIf(skip)('client: enqueue with dependsOn, a flow, and the graph getters', async () => {
      const url = await start(true, true);
      const client = new TaskqClient({ baseUrl: url });
      const a = await runningGate();
      const { id, status } = await client.enqueue('echo', { n: 1 }, { dependsOn: [a] });
      expect(status).toBe('blocked');
      const { ids } = await client.flow([
        { key: 'first', action: 'echo', data: { step: 1 }, after: [id] },
        { key: 'left', action: 'echo', after: ['first'] },
        { key: 'right', action: 'echo', after: ['first'], onDependencyFailure: 'run' },
        { key: 'join', action: 'echo', after: ['left', 'right'] },
      ]);
      expect(Object.keys(ids)).toEqual(['first', 'left', 'right', 'join']);
      expect(await client.dependencies(ids.join as string)).toEqual([
        { id: ids.left, action: 'echo', status: 'blocked', pending_dependencies: 1 },
        { id: ids.right, action: 'echo', status: 'blocked', pending_dependencies: 1 },
      ]);
      expect((await client.dependents(ids.first as string)).map((n) => n.id)).toEqual([ids.left, ids.right]);
      expect((await client.get(ids.right as string)).on_dependency_failure).toBe('run');
      await expect(
        client.flow([
          { key: 'x', action: 'echo', after: ['y'] },
          { key: 'y', action: 'echo' },
        ]),
      ).rejects.toThrow(/must come before it/);
      gate(a).open(null);
      expect((await client.wait(ids.join as string, { timeoutMs: 10_000 })).status).toBe('completed');
      const parent = await client.enqueue('fanout', { numbers: [5] });
      await client.wait(parent.id, { timeoutMs: 10_000 });
      expect(await client.children(parent.id)).toEqual([
        { id: expect.any(String), action: 'square', status: 'completed', pending_dependencies: 0 },
      ]);
    });

    it.skipIf(skip)('taskq enqueue --depends-on ID,ID waits for both', async () => {
      const url = await start(true, true);
      const a = await runningGate();
      const b = await runningGate();
      const run = runCli(['enqueue', 'echo', '--depends-on', `${a}, ${b}`, '--url', url]);
      const { code, stdout, stderr } = await run;
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const id = stdout.trim();
      expect(await view(id)).toMatchObject({ status: 'blocked', pending_dependencies: 2 });
      const shown = await runCli(['task', id, '--url', url]);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/waiting for:\s+2 dependencies/);
      for (const dep of [a, b])
        expect(shown.stdout).toMatch(new RegExp(`depends on\\s+${dep}\\s+gate\\s+running`));
      const upstream = await runCli(['task', a, '--url', url]);
      expect(upstream.stdout).toMatch(new RegExp(`dependent\\s+${id}\\s+echo\\s+blocked\\s+2`));
      const bad = await runCli(['enqueue', 'echo', '--depends-on', 'nope', '--url', url]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('depends_on: task nope not found');
      const policy = await runCli(['enqueue', 'echo', '--on-dependency-failure', 'maybe', '--url', url]);
      expect(policy.code).not.toBe(0);
      expect(policy.stderr).toContain('--on-dependency-failure: expected fail or run');
      gate(a).open(null);
      gate(b).open(null);
      expect((await finished(request, id)).status).toBe('completed');
    });
  });

  describe('migration 0008', () => {
    it.skipIf(skip)('keeps the rows, indexes, triggers and counts of a version-7 database', async () => {
      made = open();
      const sqlite = 'path' in made;
      const migrations = sqlite ? SQLITE_MIGRATIONS : PG_MIGRATIONS;
      if (!('path' in made)) await rawSql(made, `CREATE SCHEMA "${made.schema}"`);
      await rawSql(
        made,
        `CREATE TABLE taskq_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
      );
      for (const m of migrations.filter((m) => m.version < 8))
        await rawSql(made, `${m.sql}; INSERT INTO taskq_migrations VALUES (${m.version}, '${m.name}', 0)`);
      // Version-7 rows in every status it knew, written as version 7 wrote them.
      const key = '00112233445566778899aabbccddeeff';
      await rawSql(
        made,
        sqlite
          ? `UPDATE taskq_meta SET value = X'${key}' WHERE name = 'task_id_key'`
          : `INSERT INTO taskq_meta VALUES ('task_id_key', decode('${key}', 'hex'))`,
      );
      const codec = new TaskIdCodec(Buffer.from(key, 'hex'));
      const statuses = ['queued', 'running', 'completed', 'failed', 'cancelled'];
      const before = Array.from({ length: 10 }, (_, i) => ({
        seq: i + 1,
        id: codec.encode(i + 1),
        action: `a${i % 2}`,
        data: { i },
        status: statuses[i % 5],
      }));
      const rows = before.map(
        (t, i) =>
          `(${t.seq}, '${t.id}', '${t.action}', '${JSON.stringify(t.data)}', '${t.status}', ${T0}, 3, ${T0},
            ${i % 5 >= 2 ? T0 : 'NULL'}, ${i % 5 === 1 ? "'w'" : 'NULL'})`,
      );
      await rawSql(
        made,
        `INSERT INTO tasks (seq, id, action, data, status, run_at, max_attempts, created_at, processed_at, lease_owner)
         ${sqlite ? '' : 'OVERRIDING SYSTEM VALUE'} VALUES ${rows.join(', ')}`,
      );
      // PostgreSQL's counters are kept by the driver's statements: as version 7 would have.
      if (!sqlite)
        await rawSql(
          made,
          `INSERT INTO task_counts (action, shard, queued, running, completed, failed, cancelled)
           SELECT action, 0, ${statuses.map((st) => `count(*) FILTER (WHERE status = '${st}')`).join(', ')}
             FROM tasks GROUP BY action;
           SELECT setval(pg_get_serial_sequence('tasks', 'seq'), 10)`,
        );
      const byStatus = { queued: 2, running: 2, completed: 2, failed: 2, cancelled: 2, blocked: 0 };

      const schemaBefore = 'path' in made ? sqliteSchema(made.path) : null;
      const { applied } = await made.driver.migrate();
      expect(applied).toEqual(migrations.filter((m) => m.version >= 8).map((m) => m.name));
      for (const [i, t] of before.entries()) {
        expect(await made.driver.getTask({ id: t.id })).toMatchObject({
          id: t.id,
          action: t.action,
          data: t.data,
          status: statuses[i % 5],
          parentId: null,
          pendingDeps: 0,
          onDependencyFailure: 'fail',
          waits: 0,
        });
      }
      const counts = await made.driver.countTasks();
      expect(counts.byStatus).toEqual(byStatus);
      expect(counts.byAction).toHaveLength(10); // two actions, five statuses each
      if ('path' in made && schemaBefore) {
        // The rebuild kept every index and trigger version 7 had, and added its own.
        const after = sqliteSchema(made.path);
        expect(after.index).toEqual(expect.arrayContaining([...schemaBefore.index, 'tasks_parent']));
        expect(after.trigger).toEqual(expect.arrayContaining([...schemaBefore.trigger, 'tasks_deps_delete']));
        expect(schemaBefore.index).toContain('tasks_claimable_key');
        expect(schemaBefore.trigger).toContain('tasks_count_update');
      }
      // The triggers (SQLite) and statements (PostgreSQL) keep counting, blocked included.
      const queuedOne = before[0] as { id: string };
      const [dependent] = await made.driver.insertTasks({
        tasks: [newTask({ action: 'a0', dependsOn: [{ id: queuedOne.id }] })],
        now: Date.now(),
      });
      expect(dependent?.task.status).toBe('blocked');
      expect((await made.driver.countTasks()).byStatus).toEqual({ ...byStatus, blocked: 1 });
      await made.driver.close();
    });
  });
});
