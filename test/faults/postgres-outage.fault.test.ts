/**
 * PostgreSQL going away under load, on a private cluster: one API node and two worker nodes
 * (the built `taskq run --role ...`) under a steady POST load while the test (a) terminates every
 * backend of the service, (b) restarts the server, and (c) stops it for a few seconds and starts
 * it again. Nothing answered 202 is lost (every such task exists afterwards and completes), the
 * API answers only 202 or 503 with `{error}` (never 500, never a refused connection), and the
 * worker processes carry on without a restart: the same pids complete tasks posted afterwards.
 */
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { steadyLoad, type SteadyLoad } from '../support/load.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import { nextOutputLine, runCli, startCli, type RunningService } from '../support/process.js';
import { eventually } from '../support/service.js';

const HANDLERS = new URL('../fixtures/fault-handlers/', import.meta.url).pathname;
/** How long the server stays stopped in (c): longer than a lease renewal interval and the pool's connect timeout. */
const OUTAGE_MS = 4000;

let running: RunningService[] = [];
let cluster: PgCluster | undefined;
let load: SteadyLoad | undefined;
afterEach(async () => {
  await load?.stop();
  load = undefined;
  for (const svc of running) svc.child.kill('SIGKILL');
  await Promise.all(running.map((svc) => svc.exited));
  running = [];
  await cluster?.destroy();
  cluster = undefined;
});

interface TaskRow {
  id: string;
  status: string;
  result: { output: number; pid: number } | null;
}

it('loses no accepted task and answers only 202 or 503 while PostgreSQL is cut, restarted and stopped', async () => {
  const started = Date.now();
  cluster = await startPgCluster();
  const db = cluster.url;
  const migrated = runCli(['migrate', '--db', db]);
  expect(migrated.code, migrated.stderr).toBe(0);

  const common = ['--db', db, '--handlers', HANDLERS, '--pg-pool-size', '4', '--log-level', 'info'];
  // Polling every minute: within the test only a notification or a worker's own retry can get
  // it claiming again after an outage, so a worker that waits for its next poll shows.
  const worker = ['--role', 'worker', '--concurrency', '4', '--lease-ms', '3000', '--poll-ms', '60000'];
  const nodes = await Promise.all([
    startCli([...common, '--role', 'api']),
    startCli([...common, ...worker]),
    startCli([...common, ...worker]),
  ]);
  running.push(...nodes);
  const [api, ...workers] = nodes as [RunningService, RunningService, RunningService];
  const workerPids = workers.map((w) => w.child.pid);

  const sql = new pg.Pool({ connectionString: db, max: 1, application_name: 'test' });
  // The test's own pool sees the same outages: its idle connection dies with the server.
  sql.on('error', () => {});
  const completed = async () =>
    (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM taskq.tasks WHERE status = 'completed'`))
      .rows[0]?.n ?? 0;
  /** Waits until the load has had `more` tasks accepted and workers completed `more` since this call. */
  const progresses = async (more: number, timeoutMs = 20_000) => {
    const accepted = (load as SteadyLoad).accepted.size;
    const done = await eventually(completed, timeoutMs, 100).catch(() => 0);
    await (load as SteadyLoad).until(() => (load as SteadyLoad).accepted.size >= accepted + more, timeoutMs);
    await eventually(async () => (await completed()) >= done + more, timeoutMs, 100);
  };

  try {
    load = steadyLoad(api.url, { action: 'work', clients: 4, batchSize: 20, paceMs: 20, uniqueKeys: true });
    await progresses(200);

    // (a) Every connection of the service killed at once, the server staying up.
    const terminated = await cluster.terminateBackends('taskq:%');
    expect(terminated).toBeGreaterThanOrEqual(3); // at least one per node
    await progresses(200);

    // (b) A fast restart: connections closed with admin_shutdown, the server back within a second.
    await cluster.restart();
    await progresses(200);

    // (c) Stopped for a few seconds: refused connections. The API says 503 meanwhile and the
    // workers report the failures, then both carry on once it is back.
    const unavailableBefore = load.statuses.get(503) ?? 0;
    const failures = workers.map((w) => nextOutputLine(w, /failed/, OUTAGE_MS + 10_000));
    await cluster.stop();
    const stoppedAt = Date.now();
    await load.until(() => (load?.statuses.get(503) ?? 0) > unavailableBefore, OUTAGE_MS + 10_000);
    await Promise.all(failures);
    // The outage has a length of its own (the fault being injected), whatever was seen meanwhile.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt))));
    await cluster.start();
    const restartedAtN = Math.max(...load.accepted.values()) + 1;
    await progresses(200, 30_000);
    // Both workers, not only one of them, take up work posted after the outage.
    const lateWorkers = async () =>
      (
        await sql.query<{ pid: number }>(
          `SELECT DISTINCT (result->>'pid')::int AS pid FROM taskq.tasks
            WHERE status = 'completed' AND (data->>'n')::int >= $1`,
          [restartedAtN],
        )
      ).rows.map((r) => r.pid);
    await eventually(async () => (await lateWorkers()).length === workers.length, 30_000, 100);
    await load.stop();

    expect(load.violations, 'answers a client must never get').toEqual([]);
    expect(load.statuses.get(500) ?? 0).toBe(0);
    expect(load.statuses.get(503) ?? 0).toBeGreaterThan(0);

    // Every accepted task exists and completes with its result.
    const accepted = load.accepted;
    await eventually(
      async () => {
        const { rows } = await sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM taskq.tasks WHERE status IN ('queued', 'running')`,
        );
        return rows[0]?.n === 0;
      },
      60_000,
      200,
    );
    const { rows } = await sql.query<TaskRow>(`SELECT id, status, result FROM taskq.tasks`);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const missing = [...accepted.keys()].filter((id) => !byId.has(id));
    expect(missing, 'accepted tasks missing from the database').toEqual([]);
    for (const [id, n] of accepted) {
      const task = byId.get(id);
      expect(task?.status, `task ${id}`).toBe('completed');
      expect(task?.result?.output, `task ${id}`).toBe(n * 2);
    }

    // The workers were never restarted: the same processes, alive, completed work posted after the outage.
    for (const w of workers) expect(w.child.exitCode, w.output()).toBeNull();
    expect(workers.map((w) => w.child.pid)).toEqual(workerPids);
    expect((await lateWorkers()).sort()).toEqual([...workerPids].sort());
    // No node hit an error it did not expect (the CLI logs and survives those; a library user would crash).
    for (const node of nodes) expect(node.output()).not.toMatch(/uncaught exception|unhandled rejection/);
    console.log(
      `postgres outage: ${accepted.size} accepted, answers ${JSON.stringify(Object.fromEntries(load.statuses))}, ${Date.now() - started} ms`,
    );
  } finally {
    await sql.end();
  }
});
