/**
 * PostgreSQL-only behaviour the contract suite cannot state for every driver: failing fast when
 * the database is gone, the listener reconnecting, and many nodes migrating at once.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { TASK_STATUSES } from '../../src/core/task.js';
import { QueueError } from '../../src/core/errors.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { openDriver } from '../../src/drivers/open-driver.js';
import { MIGRATIONS, MIGRATIONS_TABLE, RECORD_APPLIED } from '../../src/drivers/postgres/migrations.js';
import { PostgresDriver } from '../../src/drivers/postgres/postgres-driver.js';
import {
  claimStatement,
  LIST_DIALECT,
  LITERAL_CLAIM_LIMIT_MAX,
  sessionOptions,
  SQL,
} from '../../src/drivers/postgres/queries.js';
import { listQuery, renderList } from '../../src/drivers/shared/list-filter.js';
import { newTask } from '../contract/driver-contract.js';
import { eventually } from '../support/service.js';
import {
  dropSchema,
  isolatedPostgres,
  postgresSkip,
  postgresTestUrl,
  randomSchema,
} from '../support/postgres.js';

const skip = postgresSkip();
const suite = skip ? describe.skip : describe;

suite('PostgresDriver', () => {
  const url = postgresTestUrl() as string;
  const toClose: QueueDriver[] = [];
  const schemas: string[] = [];
  afterEach(async () => {
    for (const d of toClose.splice(0)) await d.close();
    for (const s of schemas.splice(0)) await dropSchema(url, s);
  });

  /** A migrated driver on a schema of its own, closed and dropped after the case. */
  async function migratedDriver(): Promise<{ schema: string; driver: PostgresDriver }> {
    const schema = randomSchema();
    schemas.push(schema);
    const driver = new PostgresDriver({ connectionString: url, poolSize: 2, schema });
    toClose.push(driver);
    await driver.migrate();
    return { schema, driver };
  }

  it('is what openDriver returns for a postgres:// URL', async () => {
    const driver = await openDriver({ db: url, sync: 'full', pgPoolSize: 2 });
    toClose.push(driver);
    expect(driver).toBeInstanceOf(PostgresDriver);
    expect(driver.capabilities).toEqual({
      crossProcessNotify: true,
      skipLocked: true,
      actionIndexedStatuses: TASK_STATUSES,
    });
    expect(driver.description).not.toMatch(/postgres@/);
  });

  it('takes its schema from ?schema= in the URL', async () => {
    const schema = randomSchema();
    schemas.push(schema);
    const driver = await openDriver({ db: `${url}?schema=${schema}`, sync: 'full', pgPoolSize: 2 });
    toClose.push(driver);
    expect(driver.description).toContain(`(schema ${schema})`);
    await driver.migrate();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'tasks'`,
        [schema],
      );
      expect(rows).toHaveLength(1);
    } finally {
      await admin.end();
    }
  });

  it('rejects a schema name that is not a plain identifier', () => {
    expect(() => new PostgresDriver({ connectionString: url, poolSize: 2, schema: 'a"; DROP' })).toThrow(
      /lower-case identifier/,
    );
  });

  it('migrates once when ten drivers start at once', async () => {
    const schema = randomSchema();
    schemas.push(schema);
    const drivers = Array.from(
      { length: 10 },
      () => new PostgresDriver({ connectionString: url, poolSize: 2, schema }),
    );
    toClose.push(...drivers);
    const results = await Promise.all(drivers.map((d) => d.migrate()));
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    expect(new Set(results.map((r) => r.current)).size).toBe(1);
  });

  describe('when the database is gone', () => {
    let server: Server | undefined;
    const sockets: Socket[] = [];
    afterEach(async () => {
      for (const s of sockets.splice(0)) s.destroy();
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      server = undefined;
    });

    it('fails with TQ_ERR_UNAVAILABLE when nothing listens', async () => {
      const driver = new PostgresDriver({
        connectionString: 'postgres://postgres@127.0.0.1:1/none',
        poolSize: 2,
      });
      toClose.push(driver);
      await expect(driver.ping()).rejects.toMatchObject({ code: 'TQ_ERR_UNAVAILABLE' });
      await expect(driver.getTask({ id: 'x' })).rejects.toBeInstanceOf(QueueError);
      await expect(driver.insertTasks({ tasks: [newTask()], now: 0 })).rejects.toMatchObject({
        code: 'TQ_ERR_UNAVAILABLE',
        httpStatus: 503,
      });
    });

    it('fails fast instead of hanging when the server never answers', async () => {
      // Accepts TCP connections and says nothing, like a host behind a dead network path.
      server = createServer((socket) => void sockets.push(socket));
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      const driver = new PostgresDriver({
        connectionString: `postgres://postgres@127.0.0.1:${port}/none`,
        poolSize: 2,
      });
      toClose.push(driver);
      const started = Date.now();
      await expect(driver.ping()).rejects.toMatchObject({ code: 'TQ_ERR_UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(2600);
      const before = Date.now();
      await expect(driver.claimTasks({ owner: 'w', limit: 1, now: 0, leaseMs: 1000 })).rejects.toMatchObject({
        code: 'TQ_ERR_UNAVAILABLE',
      });
      expect(Date.now() - before).toBeLessThan(5000);
    });
  });

  it('plans a small claim once per connection: a generic plan that reads tasks_claimable', async () => {
    // One action in the table is the case where an estimate from the action column's statistics
    // chose a sequential scan and sort of the whole table (queries.ts, ACTION_UNESTIMATED).
    const { schema, driver } = await migratedDriver();
    await driver.insertTasks({ tasks: Array.from({ length: 1000 }, () => newTask({ runAt: 0 })), now: 0 });
    const claim = claimStatement('claimTasks', 7);
    expect(claim.limitParam).toBe(false);
    expect(claimStatement('claimTasks', LITERAL_CLAIM_LIMIT_MAX + 1).limitParam).toBe(true);
    const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await client.connect();
    try {
      await client.query(`ANALYZE tasks`);
      for (let i = 0; i < 8; i++) {
        const { rowCount } = await client.query({ ...claim, values: ['w', 1000, 10] });
        expect(rowCount).toBe(7);
      }
      // The plan cache tries 5 custom plans, then keeps the generic one when it costs no more.
      const { rows } = await client.query<{ generic_plans: number; custom_plans: number }>(
        `SELECT generic_plans::int, custom_plans::int FROM pg_prepared_statements WHERE name = $1`,
        [claim.name],
      );
      expect(rows[0]).toEqual({ generic_plans: 3, custom_plans: 5 });
      await client.query(`SET plan_cache_mode = force_generic_plan`);
      const except = claimStatement('claimTasksExceptActions', 7);
      await client.query({ ...except, values: ['w', 1000, 10, ['other']] });
      for (const execute of [
        `EXECUTE "${claim.name}"('w', 1000, 10)`,
        `EXECUTE "${except.name}"('w', 1000, 10, '{other}')`,
      ]) {
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${execute}`);
        const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(text).toContain('Index Scan using tasks_claimable');
        // The one sequential scan allowed is of the paused actions (an empty table).
        expect(text.replaceAll('Seq Scan on taskq_paused_actions', '')).not.toContain('Seq Scan');
      }
    } finally {
      await client.end();
    }
  });

  it('plans the hot statements through indexes even on an empty table: no generic plan scans tasks', async () => {
    // A connection keeps a statement's generic plan. Made on an empty table, the claim's and the
    // acks' plans scanned it, and kept scanning as it filled (queries.ts, sessionOptions).
    const { schema } = await migratedDriver();
    const client = new pg.Client({ connectionString: url, options: sessionOptions(schema) });
    await client.connect();
    try {
      await client.query('SET plan_cache_mode = force_generic_plan');
      const statements: [string, string, string][] = [
        ['claim', claimStatement('claimTasks', 7).text, `'w', 1, 2`],
        ['claim_floor', claimStatement('claimFromFloor', 7).text, `'w', 1, 2, 0, 0`],
        ['complete', SQL.completeTasks, `1, '{1}', '{w}', '{1}', '{null}', '{null}', 20`],
        ['extend', SQL.extendLeases, `'w', 1, '{1}', '{null}'`],
        ['release', SQL.releaseTasks, `'{1}', '{w}', '{1}'`],
      ];
      for (const [name, text, args] of statements) {
        await client.query(`PREPARE ${name} AS ${text}`);
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE ${name}(${args})`);
        const lines = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(lines, name).not.toMatch(/Seq Scan on tasks\b/);
      }
    } finally {
      await client.end();
    }
  });

  it('seeks the oldest queued task and walks a status or an action through the key index when the statistics say most tasks are queued', async () => {
    // A table analyzed while it was filled, then drained: written as `status = 'queued' ORDER BY
    // seq`, the seek walked tasks_pkey and filtered, reading every finished task (queries.ts,
    // SEEK_EQUAL: 0.5-1.4 s per /stats at 1,000,000).
    const { schema } = await migratedDriver();
    const client = new pg.Client({ connectionString: url, options: sessionOptions(schema) });
    await client.connect();
    try {
      await client.query(`
        INSERT INTO tasks (seq, id, action, data, status, priority, run_at, max_attempts, created_at)
        OVERRIDING SYSTEM VALUE
        SELECT g, 't' || g, 'noop', '{}', 'queued', 0, 0, 3, g FROM generate_series(1, 5000) g`);
      await client.query('ANALYZE tasks');
      await client.query(`UPDATE tasks SET status = 'completed', processed_at = 1 WHERE seq < 5000`);
      await client.query(`
        INSERT INTO task_counts (action, shard, blocked, queued, running, completed, failed, cancelled)
        VALUES ('noop', 0, 0, 1, 0, 4999, 0, 0)`);
      // GET /tasks?status=queued and ?action=noop: the list walks (shared/list-filter.ts, keyIndex).
      const pageOf = (params: { status?: 'queued'; action?: string }) =>
        renderList(
          listQuery({ ...params, limit: 50 }, () => [], TASK_STATUSES),
          LIST_DIALECT,
          'rows',
        );
      const byStatus = pageOf({ status: 'queued' });
      const byAction = pageOf({ action: 'noop' });
      const byBoth = pageOf({ status: 'queued', action: 'noop' });
      const keyIndex = /Index (Only )?Scan( Backward)? using tasks_status_action_seq on tasks/;
      const seeks: [string, string, unknown[], RegExp][] = [
        ['counts', SQL.countsFromCounters, [], keyIndex],
        ['oldest by action', SQL.oldestQueuedByAction, [], keyIndex],
        ['a page of queued tasks', byStatus.sql, byStatus.values, keyIndex],
        ["a page of an action's tasks", byAction.sql, byAction.values, keyIndex],
        ["a page of an action's queued tasks", byBoth.sql, byBoth.values, keyIndex],
      ];
      for (const [name, text, values, index] of seeks) {
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, values);
        const lines = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(lines, name).toMatch(index);
        // tasks_pkey may only be read by key (a merged walk's rows), never walked and filtered.
        const pkeyReads = lines
          .split('\n')
          .flatMap((line, i, all) =>
            /Scan( Backward)? using tasks_pkey on tasks/.test(line) ? [all[i + 1] ?? ''] : [],
          );
        for (const next of pkeyReads) expect(next, name).toMatch(/Index Cond: \(seq = /);
      }
      const { rows } = await client.query<{ t: string }>(SQL.countsFromCounters);
      expect(Number(rows[0]?.t)).toBe(5000);
    } finally {
      await client.end();
    }
  });

  it('compiles no statement with JIT, not even one priced as a sequential scan (a node heartbeat)', async (ctx) => {
    // enable_seqscan = off prices the heartbeat's scan of taskq_nodes at 10^10, far above
    // jit_above_cost: with JIT on, every heartbeat was compiled, 85 ms of server CPU (queries.ts).
    const { schema } = await migratedDriver();
    const client = new pg.Client({ connectionString: url, options: sessionOptions(schema) });
    await client.connect();
    try {
      // pg_jit_available() is false in a session with jit off: ask a plain connection.
      const plain = new pg.Client({ connectionString: url });
      await plain.connect();
      const { rows } = await plain.query<{ available: boolean }>('SELECT pg_jit_available() AS available');
      await plain.end();
      if (!rows[0]?.available) ctx.skip('this server has no JIT to turn off');
      await client.query('BEGIN');
      const node = ['n1', 'host', 1, 'worker', '0.1.0', 0, 1000, 2, 0, 0, '[]', 1, 0];
      const plan = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${SQL.heartbeatNode}`, node);
      expect(JSON.stringify(plan.rows)).not.toContain('"JIT"');
    } finally {
      await client.query('ROLLBACK');
      await client.end();
    }
  });

  it(
    "reads a task's graph through indexes: generic plans of the lists and counts scan no table",
    { timeout: 90_000 },
    async () => {
      const { schema, driver } = await migratedDriver();
      // A parent with 1,000 dependents and 1,000 children among 2,000 other tasks, 500 of which
      // each depend on one of the others: edges of many dependencies, as in a real table.
      const [root] = await driver.insertTasks({ tasks: [newTask()], now: 0 });
      const parent = (root as { task: { id: string; seq: number } }).task;
      const others = await driver.insertTasks({
        tasks: Array.from({ length: 1500 }, () => newTask()),
        now: 0,
      });
      await driver.insertTasks({
        tasks: others.slice(0, 500).map((o) => newTask({ dependsOn: [{ id: o.task.id }] })),
        now: 0,
      });
      await driver.insertTasks({
        tasks: Array.from({ length: 1000 }, () => newTask({ dependsOn: [{ id: parent.id }] })),
        now: 0,
      });
      await driver.insertTasks({
        tasks: Array.from({ length: 1000 }, () => newTask({ parentId: parent.id })),
        now: 0,
      });
      const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
      await client.connect();
      try {
        await client.query(`ANALYZE tasks; ANALYZE task_deps`);
        await client.query(`SET plan_cache_mode = force_generic_plan`);
        const statements = [
          ['dependenciesOf', parent.seq],
          ['dependentsOf', parent.seq],
          ['childNodesOf', parent.id],
          ['countDependencies', parent.seq],
          ['countDependents', parent.seq],
          ['countChildren', parent.id],
        ] as const;
        for (const [name, key] of statements) {
          await client.query({ name, text: SQL[name], values: [key, 100] });
          const plan = await client.query<{ 'QUERY PLAN': string }>(
            `EXPLAIN EXECUTE "${name}"(${typeof key === 'number' ? key : `'${key}'`}, 100)`,
          );
          const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
          expect(text, name).not.toContain('Seq Scan');
          expect(text, name).toMatch(/Index (Only )?Scan/);
        }
      } finally {
        await client.end();
      }
    },
  );

  it('replaces the five list indexes with the key index on a table that holds tasks (migration 0014)', async () => {
    const { schema, driver } = await migratedDriver();
    const inserted = await driver.insertTasks({
      tasks: [
        newTask({ action: 'mail' }),
        newTask({ action: 'sms' }),
        newTask({ action: 'mail' }),
        newTask({ action: 'sms' }),
      ],
      now: 0,
    });
    const [mail1, sms1, mail2] = inserted.map((r) => r.task);
    const now = mail1!.runAt;
    const claimed = await driver.claimTasks({ owner: 'w', limit: 2, now, leaseMs: 60_000 });
    expect(claimed.map((t) => t.id)).toEqual([mail1?.id, sms1?.id]);
    await driver.completeTasks({
      completions: [{ id: mail1!.id, seq: mail1!.seq, owner: 'w', attempt: 1, result: null }],
      now: now + 1,
    });
    // Back to version 13: its indexes, and 0014 not applied.
    const admin = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await admin.connect();
    try {
      await admin.query(`
        DROP INDEX tasks_status_action_seq;
        CREATE INDEX tasks_status_seq ON tasks (status, seq);
        CREATE INDEX tasks_action_seq ON tasks (action, seq);
        CREATE INDEX tasks_failed_action ON tasks (action, seq) WHERE status = 'failed';
        CREATE INDEX tasks_cancelled_action ON tasks (action, seq) WHERE status = 'cancelled';
        CREATE INDEX tasks_queued_action ON tasks (action, seq) WHERE status = 'queued';
        DELETE FROM taskq_migrations WHERE version = 14;`);
    } finally {
      await admin.end();
    }
    const again = new PostgresDriver({ connectionString: url, poolSize: 2, schema });
    toClose.push(again);
    expect((await again.migrate()).applied).toEqual(['0014_one_key_index']);
    const ids = async (params: { status?: 'queued' | 'running' | 'completed'; action?: string }) =>
      (await again.listTasks({ ...params, limit: 10 })).map((t) => t.id);
    expect(await ids({ status: 'queued' })).toEqual([inserted[3]?.task.id, mail2?.id]);
    expect(await ids({ status: 'running' })).toEqual([sms1?.id]);
    expect(await ids({ action: 'mail' })).toEqual([mail2?.id, mail1?.id]);
    expect(await ids({ status: 'completed', action: 'mail' })).toEqual([mail1?.id]);
    expect(await ids({ status: 'completed', action: 'sms' })).toEqual([]);
    const counts = await again.countTasks();
    expect(counts.byStatus.queued).toBe(2);
    expect(counts.oldestQueuedAt).toBe(mail2?.createdAt);
  });

  it('keeps tasks from before ids encoded seq findable by their random ids (migration 0004)', async () => {
    const schema = randomSchema();
    schemas.push(schema);
    // A database as it was at version 2, with one task under a random id.
    const admin = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await admin.connect();
    const legacyId = randomUUID();
    try {
      await admin.query(`CREATE SCHEMA "${schema}"`);
      await admin.query(MIGRATIONS_TABLE);
      for (const m of MIGRATIONS.filter((m) => m.version <= 2)) {
        await admin.query(m.sql);
        await admin.query(RECORD_APPLIED, [m.version, m.name, 0]);
      }
      await admin.query(
        `INSERT INTO tasks (id, action, data, status, run_at, max_attempts, created_at)
         VALUES ($1, 'echo', '{}', 'failed', 0, 3, 0)`,
        [legacyId],
      );
    } finally {
      await admin.end();
    }
    const driver = new PostgresDriver({ connectionString: url, poolSize: 2, schema });
    toClose.push(driver);
    const { applied } = await driver.migrate();
    expect(applied).toContain('0004_ids_from_seq');

    expect(await driver.getTask({ id: legacyId.toUpperCase() })).toMatchObject({
      id: legacyId,
      status: 'failed',
    });
    expect((await driver.retryTask({ id: legacyId, now: 1 })).outcome).toBe('requeued');
    expect((await driver.cancelTask({ id: legacyId, now: 2 })).outcome).toBe('cancelled');
    // New tasks get ids that encode their seq, and both kinds are found.
    const [fresh] = await driver.insertTasks({ tasks: [newTask()], now: 3 });
    expect(fresh?.task.seq).toBeGreaterThan(1);
    expect((await driver.getTask({ id: fresh?.task.id as string }))?.seq).toBe(fresh?.task.seq);
    expect(await driver.getTask({ id: randomUUID() })).toBeNull();
  });

  it('reconnects its listener after the connection drops, and says so with tasksQueued', async () => {
    const made = isolatedPostgres(url);
    schemas.push(made.schema);
    const { driver } = made;
    const peer = await made.openPeer();
    toClose.push(driver, peer);
    await driver.migrate();
    const heard: number[] = [];
    const hearers = new Set<() => void>();
    driver.on('tasksQueued', ({ count }) => {
      heard.push(count);
      for (const hear of hearers) hear();
    });
    /** Resolves once `count` is among the tasksQueued heard (now or later). */
    const hears = (count: number) =>
      new Promise<void>((resolve) => {
        const hear = () => {
          if (!heard.includes(count)) return;
          hearers.delete(hear);
          resolve();
        };
        hearers.add(hear);
        hear();
      });

    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const listenerPids = async () =>
        (
          await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE query = $1`, [
            `LISTEN "tqq:${made.schema}"`,
          ])
        ).rows.map((r) => r.pid);
      // Nothing announces that the listener has issued its LISTEN: the server's view is polled.
      const [pid] = await eventually(async () => {
        const pids = await listenerPids();
        return pids.length > 0 ? pids : undefined;
      }, 5000);
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await hears(0);
      const [newPid] = await listenerPids();
      expect(newPid).toBeDefined();
      expect(newPid).not.toBe(pid);
      // and it hears other processes again
      heard.length = 0;
      await peer.insertTasks({ tasks: [newTask()], now: 0 });
      await hears(1);
    } finally {
      await admin.end();
    }
  });
});
