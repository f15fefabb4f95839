/**
 * Several processes on one SQLite file: one API node and two worker nodes (the built
 * `taskq run --role ...`). Workers in other processes hear nothing from the API, so they find the
 * tasks by polling (`--poll-ms 50`); every task completes exactly once (execution log).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteDriver } from '../src/drivers/sqlite/sqlite-driver.js';
import { postLoad } from './support/load.js';
import { startCli, type RunningService } from './support/process.js';
import { eventually } from './support/service.js';
import { tempDir } from './support/temp.js';

const HANDLERS = new URL('./fixtures/handlers/', import.meta.url).pathname;
const TOTAL = 1000;

let running: RunningService[] = [];
let cleanup = () => {};
afterEach(async () => {
  for (const svc of running) svc.child.kill('SIGKILL');
  await Promise.all(running.map((svc) => svc.exited));
  running = [];
  cleanup();
});

it('an API process and two worker processes on one SQLite file run every task exactly once', async () => {
  const started = Date.now();
  const dir = tempDir();
  cleanup = dir.cleanup;
  const db = join(dir.dir, 'tasks.db');
  const executions = join(dir.dir, 'executions.log');
  const env = { TASKQ_TEST_EXECUTIONS: executions };
  const common = ['--db', db, '--handlers', HANDLERS, '--poll-ms', '50', '--log-level', 'info'];
  const start = async (args: string[]) => {
    const node = await startCli([...common, ...args], env);
    running.push(node);
    return node;
  };
  // The API node migrates the file first; the workers then open it as it is.
  const api = await start(['--role', 'api']);
  const workers = await Promise.all([start(['--role', 'worker']), start(['--role', 'worker'])]);

  const accepted = await postLoad(api.url, {
    total: TOTAL,
    action: 'double',
    batchSize: 100,
    singles: 100,
    concurrency: 4,
  }).done;
  expect(accepted.size).toBe(TOTAL);

  const driver = new SqliteDriver({ path: db });
  try {
    await eventually(
      async () => {
        const { byStatus } = await driver.countTasks();
        return byStatus.queued + byStatus.running === 0;
      },
      45_000,
      100,
    );
    for (const [id, n] of accepted) {
      const task = await driver.getTask({ id });
      expect(task?.status, `task ${id}`).toBe('completed');
      expect(task?.result, `task ${id}`).toEqual({ output: n * 2 });
    }
  } finally {
    await driver.close();
  }
  const runs = readFileSync(executions, 'utf8').trim().split('\n');
  const perTask = new Map<string, number>();
  for (const id of runs) perTask.set(id, (perTask.get(id) ?? 0) + 1);
  expect(perTask.size).toBe(TOTAL);
  expect(
    [...perTask].filter(([, n]) => n > 1).map(([id]) => id),
    'tasks that ran more than once',
  ).toEqual([]);
  // Both workers took part: each one's metrics count handler runs.
  let ranByWorkers = 0;
  for (const worker of workers) {
    const metrics = await (await fetch(`${worker.url}/metrics`)).text();
    const match = /^taskq_task_duration_seconds_count\{[^}]*action="double"[^}]*\} (\d+)$/m.exec(metrics);
    const ran = Number(match?.[1] ?? 0);
    expect(ran).toBeGreaterThan(0);
    ranByWorkers += ran;
  }
  expect(ranByWorkers).toBe(TOTAL);
  console.log(`sqlite multi-process: ${TOTAL} tasks, ${Date.now() - started} ms`);
});
