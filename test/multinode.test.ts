/**
 * Scale-out on PostgreSQL with real processes: one API node and three worker nodes (the built
 * `taskq run --role ...`) on one schema. Every task answered 202 completes with the right result,
 * also when a worker is killed with SIGKILL mid-way (its leases expire and another node rescues
 * its tasks); without a crash every task runs exactly once, counted in a side table the fixture
 * handler writes to.
 */
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { postLoad } from './support/load.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from './support/postgres.js';
import { runCli, startCli, type RunningService } from './support/process.js';
import { PostgresDriver } from '../src/drivers/postgres/postgres-driver.js';
import { eventually, http } from './support/service.js';
import { checkedOn, type Subscribe } from './support/signals.js';

const skip = postgresSkip();
const test = skip ? it.skip : it;
const HANDLERS = new URL('./fixtures/pg-handlers/', import.meta.url).pathname;
const TOTAL = 5000;

let running: RunningService[] = [];
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  for (const svc of running) svc.child.kill('SIGKILL');
  await Promise.all(running.map((svc) => svc.exited));
  running = [];
  await cleanup?.();
  cleanup = undefined;
});

/** A schema with the side table, migrated once with `taskq migrate`; `start` starts a node on it. */
async function openCluster() {
  const url = postgresTestUrl() as string;
  const schema = randomSchema();
  const sql = new pg.Pool({ connectionString: url, max: 2 });
  // The nodes' NOTIFYs, heard from here: subscribed before any task is posted, so that the LISTEN
  // (opened in the background) is up before the last task finishes.
  const observer = new PostgresDriver({ connectionString: url, poolSize: 1, schema });
  const stopObserving = observer.on('tasksChanged', () => {});
  const changes: Subscribe = (wake) => observer.on('tasksChanged', wake);
  cleanup = async () => {
    stopObserving();
    await observer.close();
    await sql.end();
    await dropSchema(url, schema);
  };
  await sql.query(`CREATE SCHEMA "${schema}"`);
  await sql.query(`CREATE TABLE "${schema}".executions (task_id text NOT NULL, worker int NOT NULL)`);
  const db = new URL(url);
  db.searchParams.set('schema', schema);
  const migrated = runCli(['migrate', '--db', db.toString()]);
  expect(migrated.code, migrated.stderr).toBe(0);

  const env = { TASKQ_TEST_RECORD_DB: url, TASKQ_TEST_RECORD_SCHEMA: schema };
  const common = [
    '--db',
    db.toString(),
    '--handlers',
    HANDLERS,
    '--pg-pool-size',
    '4',
    '--log-level',
    'info',
  ];
  const start = async (args: string[]) => {
    const node = await startCli([...common, ...args], env);
    running.push(node);
    return node;
  };
  return { start, schema, sql, changes };
}

/** One API and three worker nodes. */
async function startCluster(workerArgs: string[]) {
  const { start, ...cluster } = await openCluster();
  const worker = ['--role', 'worker', '--concurrency', '4', '--prefetch', '8', ...workerArgs];
  const nodes = await Promise.all([start(['--role', 'api']), start(worker), start(worker), start(worker)]);
  const [api, ...workers] = nodes as [RunningService, ...RunningService[]];
  return { api, workers, ...cluster };
}

type Sql = pg.Pool;

/**
 * Waits until nothing is queued or running (looking again at each change the nodes announce),
 * then checks every accepted task's status and result.
 */
async function expectAllCompleted(
  sql: Sql,
  schema: string,
  accepted: Map<string, number>,
  changes: Subscribe,
) {
  await checkedOn(
    changes,
    async () => {
      const { rows } = await sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${schema}".tasks WHERE status IN ('queued', 'running')`,
      );
      return rows[0]?.n === 0;
    },
    45_000,
  );
  const { rows } = await sql.query<{ id: string; status: string; result: unknown; attempts: number }>(
    `SELECT id, status, result, attempts FROM "${schema}".tasks`,
  );
  expect(rows.length).toBe(accepted.size);
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const [id, n] of accepted) {
    const task = byId.get(id);
    expect(task?.status, `task ${id}`).toBe('completed');
    expect(task?.result, `task ${id}`).toEqual({ output: n * 2 });
  }
  return byId;
}

/** Executions per task id, from the side table. */
async function executions(sql: Sql, schema: string): Promise<Map<string, number>> {
  const { rows } = await sql.query<{ task_id: string; n: number }>(
    `SELECT task_id, count(*)::int AS n FROM "${schema}".executions GROUP BY task_id`,
  );
  return new Map(rows.map((r) => [r.task_id, r.n]));
}

/** For each task with a lost lease in its history, the nodes that held those leases. */
async function lostLeases(sql: Sql, schema: string): Promise<Map<string, string[]>> {
  const { rows } = await sql.query<{ id: string; node: string }>(
    `SELECT t.id, e->>'node' AS node
       FROM "${schema}".tasks t, jsonb_array_elements(t.attempt_history) e
      WHERE t.attempts > 1 AND e->>'outcome' = 'lease_lost'`,
  );
  const lost = new Map<string, string[]>();
  for (const { id, node } of rows) lost.set(id, [...(lost.get(id) ?? []), node]);
  return lost;
}

/** The process id in a node id (`host:pid:random`). */
const nodePid = (node: string): number => Number(node.split(':').at(-2));

test('every accepted task completes when a worker node is killed with SIGKILL mid-way', async () => {
  const started = Date.now();
  const { api, workers, schema, sql, changes } = await startCluster(['--lease-ms', '2000']);
  const victim = workers[0] as RunningService;
  const load = postLoad(api.url, {
    total: TOTAL,
    action: 'record',
    batchSize: 100,
    singles: 300,
    concurrency: 8,
  });
  // Kill mid-way, while the victim holds leases on running tasks.
  const holding = async () => {
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".tasks WHERE status = 'running' AND lease_owner LIKE $1`,
      [`%:${victim.child.pid}:%`],
    );
    return (rows[0]?.n ?? 0) > 0;
  };
  // A claim announces nothing (no NOTIFY) and the load reports no progress: poll for the moment.
  await eventually(async () => load.accepted.size >= TOTAL / 2 && (await holding()), 30_000, 10);
  victim.child.kill('SIGKILL');
  expect(await victim.exited).toBeNull();
  // An ack already on the wire still commits (it is one statement): look once the database has
  // seen the dead node's connections close (PostgreSQL's state, which announces nothing: polled).
  await eventually(async () => {
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`,
      [`taskq:${victim.child.pid}`],
    );
    return rows[0]?.n === 0;
  }, 20_000);
  // What the dead node held: only a rescue can finish these.
  const { rows: stranded } = await sql.query<{ id: string }>(
    `SELECT id FROM "${schema}".tasks WHERE status = 'running' AND lease_owner LIKE $1`,
    [`%:${victim.child.pid}:%`],
  );
  const accepted = await load.done;
  expect(accepted.size).toBe(TOTAL);

  const tasks = await expectAllCompleted(sql, schema, accepted, changes);
  expect(stranded.length).toBeGreaterThan(0);
  for (const { id } of stranded) expect(tasks.get(id)?.attempts, `task ${id}`).toBeGreaterThanOrEqual(2);
  // What the kill stranded is at most what the node held: running, prefetched, and finished with
  // the ack not yet written. (Its lost leases in all can be more: before the kill, a loaded machine
  // can stall any node past its 2 s lease, and then the rescuer takes those tasks too.)
  expect(stranded.length).toBeLessThanOrEqual(4 + 8 + 50);
  // At-least-once: a task runs again only after the rescuer found its lease expired, which the
  // attempt history records (`lease_lost`, with the node that held it). A stall past a lease is
  // allowed and reported, but still each extra run must follow a recorded lost lease.
  const runs = await executions(sql, schema);
  expect(runs.size).toBe(TOTAL);
  const lostBy = await lostLeases(sql, schema);
  const lostByVictim = new Set<string>();
  let repeated = 0;
  for (const [id, n] of runs) {
    if (n === 1) continue;
    repeated++;
    const holders = lostBy.get(id) ?? [];
    expect(holders.length, `task ${id} ran ${n} times`).toBeGreaterThanOrEqual(n - 1);
    for (const node of holders) if (nodePid(node) === victim.child.pid) lostByVictim.add(id);
  }
  const survivorsLost = [...lostBy.values()].flat().filter((node) => nodePid(node) !== victim.child.pid);
  console.log(
    `multinode crash: ${TOTAL} tasks, ${stranded.length} stranded by the kill and rescued, ${repeated} ran twice ` +
      `(${lostByVictim.size} after the killed node's leases, ${survivorsLost.length} after a surviving node's), ` +
      `${Date.now() - started} ms`,
  );
});

test('without a crash, every task runs exactly once across three worker nodes', async () => {
  const started = Date.now();
  const { api, workers, schema, sql, changes } = await startCluster([]);
  const accepted = await postLoad(api.url, {
    total: TOTAL,
    action: 'record',
    batchSize: 250,
    singles: 200,
    concurrency: 8,
  }).done;
  expect(accepted.size).toBe(TOTAL);
  await expectAllCompleted(sql, schema, accepted, changes);
  const runs = await executions(sql, schema);
  expect(runs.size).toBe(TOTAL);
  const twice = [...runs].filter(([, n]) => n > 1).map(([id]) => id);
  expect(twice, 'tasks that ran more than once').toEqual([]);
  // The work was shared: every worker node ran some of it.
  const { rows } = await sql.query<{ worker: number }>(`SELECT DISTINCT worker FROM "${schema}".executions`);
  expect(rows.map((r) => r.worker).sort()).toEqual(workers.map((w) => w.child.pid).sort());
  console.log(`multinode exactly-once: ${TOTAL} tasks, ${Date.now() - started} ms`);
});

test('tasks a node took as they were stored (hand-off) are rescued by another node when it is killed', async () => {
  const { start, schema, sql, changes } = await openCluster();
  // No poll: nothing wakes its producer but what the test does, so it stays idle between POSTs.
  const node = await start([
    ...['--role', 'all', '--concurrency', '2', '--prefetch', '5', '--lease-ms', '2000'],
    ...['--poll-ms', '600000', '--log-level', 'debug'],
  ]);
  // Idle first: a POST while the start-up claim is in flight inserts its task queued, and that
  // task's announcement wakes the producer to claim again, and so on for the POSTs after it.
  await eventually(() => node.output().includes('claim found no task'), 10_000);
  // One at a time at light load: the idle node takes each task in the insert's commit. Their
  // first attempts hang (the fixture's holdFirst), so the node holds them all when it dies.
  const accepted = new Map<string, number>();
  for (let n = 0; n < 5; n++) {
    const res = await http(`${node.url}/tasks`, {
      method: 'POST',
      json: { action: 'record', data: { n, holdFirst: true } },
    });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('queued'); // the task as accepted
    accepted.set(res.body.id, n);
  }
  const ids = [...accepted.keys()];
  const held = async () => {
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".tasks WHERE status = 'running' AND lease_owner LIKE $1`,
      [`%:${node.child.pid}:%`],
    );
    return rows[0]?.n === ids.length;
  };
  // The database announces neither claims nor hand-offs: polled.
  await eventually(held, 10_000, 10);
  // Its debug log names what it took at insert, each before the request's own log line (written
  // once the 202 is sent): once all five of those are read, so are the hand-offs.
  const lines = () => node.output().split('\n');
  await eventually(() => lines().filter((l) => l.includes('"url":"/tasks","status":202')).length === 5, 5000);
  const handedOff = lines()
    .filter((line) => line.includes('took tasks as they were stored'))
    .flatMap((line) => (JSON.parse(line) as { tasks: string[] }).tasks);
  expect(handedOff.sort()).toEqual([...ids].sort());

  node.child.kill('SIGKILL');
  expect(await node.exited).toBeNull();
  await start(['--role', 'worker']);
  const tasks = await expectAllCompleted(sql, schema, accepted, changes);
  const lost = await lostLeases(sql, schema);
  for (const id of ids) {
    expect(tasks.get(id)?.attempts, `task ${id}`).toBe(2);
    expect(lost.get(id)?.map(nodePid), `task ${id}`).toEqual([node.child.pid]);
  }
  console.log(`hand-off crash: ${handedOff.length} of ${ids.length} taken at insert, all rescued`);
});
