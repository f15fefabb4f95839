/**
 * SQLite's write lock held by another process for longer than the busy timeout (5 s): the test
 * opens the file itself and holds BEGIN IMMEDIATE while the built `taskq run` has tasks running.
 * A POST meanwhile is answered 503 `{error}` saying the database is locked; the handlers that
 * finish meanwhile lose no ack: once the lock is released each of their tasks is completed
 * exactly once, with its result, and the same process takes new work without a restart.
 */
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { FAULT_HANDLERS, readExecutions } from '../support/executions.js';
import { childProcesses } from '../support/process.js';
import { drained, eventually, http } from '../support/service.js';
import { tempDir } from '../support/temp.js';

const children = childProcesses();
let cleanups: (() => void)[] = [];
afterEach(async () => {
  await children.killAll();
  for (const fn of cleanups.reverse()) fn();
  cleanups = [];
});

it('answers 503 "locked" while another process holds the write lock, and writes every result once after', async () => {
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  const db = join(dir.dir, 'tasks.db');
  const executions = join(dir.dir, 'executions.log');
  const release = join(dir.dir, 'release');
  // A lease far longer than the lock is held: the tasks' leases must outlive it, so what is
  // tested is the ack path, not a rescue.
  const svc = await children.start(
    [
      '--db',
      db,
      '--handlers',
      FAULT_HANDLERS,
      '--lease-ms',
      '60000',
      '--poll-ms',
      '50',
      '--log-level',
      'info',
    ],
    { TASKQ_TEST_EXECUTIONS: executions },
  );
  const created = await http(`${svc.url}/tasks/batch`, {
    method: 'POST',
    json: { tasks: [0, 1].map((n) => ({ action: 'hold', data: { release, n } })) },
  });
  expect(created.status).toBe(202);
  const ids = created.body.ids as string[];
  await eventually(() => readExecutions(executions).size === ids.length);

  const locker = new Database(db);
  cleanups.push(() => {
    if (locker.inTransaction) locker.exec('ROLLBACK');
    locker.close();
  });
  locker.exec('BEGIN IMMEDIATE');
  // The handlers finish while the lock is held: their acks wait out the busy timeout and fail.
  writeFileSync(release, '');
  const lockedAt = Date.now();
  const refused = await http(`${svc.url}/tasks`, {
    method: 'POST',
    json: { action: 'hold', data: { release } },
  });
  expect(refused.status).toBe(503);
  expect(refused.body.error).toMatch(/database is locked/);
  expect(refused.body.code).toBe('TQ_ERR_UNAVAILABLE');
  const heldMs = Date.now() - lockedAt;
  locker.exec('ROLLBACK');

  // Released: the acks are written, each task once; and new work is taken.
  const reader = new SqliteDriver({ path: db });
  cleanups.push(() => void reader.close());
  const again = await http(`${svc.url}/tasks`, {
    method: 'POST',
    json: { action: 'hold', data: { release, n: 9 } },
  });
  expect(again.status).toBe(202);
  await drained(reader);
  for (const [n, id] of [...ids, again.body.id as string].entries()) {
    const task = await reader.getTask({ id });
    expect(task, `task ${id}`).toMatchObject({ status: 'completed', attempts: 1 });
    expect(task?.result).toEqual({ pid: svc.child.pid, n: n < ids.length ? n : 9 });
  }
  const runs = readExecutions(executions);
  expect([...runs.values()].map((pids) => pids.length)).toEqual([1, 1, 1]);
  expect((await http(`${svc.url}/healthz`)).status).toBe(200);
  console.log(
    `sqlite locked: the lock was held ${heldMs} ms; the POST meanwhile got 503 "${refused.body.error}"`,
  );
});
