/**
 * The durability promise: every task answered 202 survives `kill -9` of the service under load,
 * and after a restart completes exactly once with the right result.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteDriver } from '../src/drivers/sqlite/sqlite-driver.js';
import { startCli, type RunningService } from './support/process.js';
import { drained, eventually, http } from './support/service.js';
import { tempDir } from './support/temp.js';

const HANDLERS = new URL('./fixtures/handlers/', import.meta.url).pathname;
let running: RunningService[] = [];
let cleanup = () => {};
afterEach(() => {
  for (const svc of running) svc.child.kill('SIGKILL');
  running = [];
  cleanup();
});

it('loses no accepted task when the service is killed with SIGKILL under load', async () => {
  const dir = tempDir();
  cleanup = dir.cleanup;
  const db = join(dir.dir, 'tasks.db');
  const executions = join(dir.dir, 'executions.log');
  const args = ['--db', db, '--handlers', HANDLERS, '--lease-ms', '1000', '--log-level', 'info'];
  const env = { TASKQ_TEST_EXECUTIONS: executions };

  const first = await startCli(args, env);
  running.push(first);
  const accepted = new Map<string, number>(); // id -> n
  let refused = 0;
  let n = 0;
  let killed = false;
  // 16 clients POST as fast as they can until the process dies under them.
  const client = async () => {
    while (!killed) {
      const value = n++;
      try {
        const res = await http(`${first.url}/tasks`, {
          method: 'POST',
          json: { action: 'double', data: { n: value } },
        });
        if (res.status === 202) accepted.set(res.body.id, value);
      } catch {
        refused++; // the connection died with the process: no 202, no promise made
      }
    }
  };
  const clients = Array.from({ length: 16 }, client);
  await eventually(() => accepted.size >= 400, 20_000, 5);
  first.child.kill('SIGKILL');
  killed = true;
  await Promise.all(clients);
  expect(await first.exited).toBeNull(); // killed by a signal, no exit code

  const second = await startCli(args, env);
  running.push(second);
  const driver = new SqliteDriver({ path: db });
  try {
    await drained(driver);
    for (const [id, value] of accepted) {
      const task = await driver.getTask({ id });
      expect(task?.status, `task ${id}`).toBe('completed');
      expect(task?.result).toEqual({ output: value * 2 });
    }
    // At-least-once: only tasks held by the killed process at the moment of the kill may have run twice.
    const runs = readFileSync(executions, 'utf8').trim().split('\n');
    const perTask = new Map<string, number>();
    for (const id of runs) perTask.set(id, (perTask.get(id) ?? 0) + 1);
    const repeated = [...perTask.values()].filter((c) => c > 1).length;
    expect(repeated).toBeLessThanOrEqual(2 + 5 + 50); // concurrency + prefetch + acks not yet written
    console.log(
      `crash test: ${accepted.size} accepted, ${refused} refused at the kill, ${repeated} ran twice`,
    );
  } finally {
    await driver.close();
  }
  second.child.kill('SIGTERM');
  expect(await second.exited).toBe(0);
});
