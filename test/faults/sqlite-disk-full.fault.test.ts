/**
 * SQLite on a full disk: the built `taskq run` keeps its database on a 4 MiB tmpfs that the test
 * fills while it POSTs. Every POST is answered 202 (stored) or 503 `{error}` (not stored), never
 * 500; every task answered 202 is in the file afterwards, and the file passes integrity_check.
 * When the space comes back the same process takes and completes work again, without a restart.
 * Skipped, with one printed line, where the machine does not allow mounting a tmpfs.
 */
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { childProcesses } from '../support/process.js';
import { drained, eventually, http } from '../support/service.js';
import { fillUp, mountTmpfs, type Tmpfs } from '../support/tmpfs.js';

const children = childProcesses();
let fs: Tmpfs | null = null;
afterEach(async () => {
  await children.killAll();
  fs?.unmount();
  fs = null;
});

interface Answer {
  status: number;
  body: { id?: string; ids?: string[]; error?: unknown };
}

it('answers 503 while the disk is full, loses no accepted task, and works again when space returns', async () => {
  const mounted = mountTmpfs(4);
  if ('skipped' in mounted) {
    console.log(`sqlite disk-full case skipped: ${mounted.skipped}`);
    return;
  }
  fs = mounted;
  const db = join(fs.dir, 'tasks.db');
  const filler = join(fs.dir, 'filler');
  const svc = await children.start(['--db', db, '--log-level', 'info', '--poll-ms', '50']);
  const accepted = new Set<string>();
  const refusals: Answer[] = [];
  // Some tasks carry a larger payload, so the file grows fast once the filler is in place.
  const text = 'x'.repeat(200);
  let n = 0;
  const post = async (): Promise<Answer> => {
    const i = n++;
    const res: Answer =
      i % 4 === 0
        ? await http(`${svc.url}/tasks/batch`, {
            method: 'POST',
            json: { tasks: Array.from({ length: 10 }, () => ({ action: 'uppercase', data: { text } })) },
          })
        : await http(`${svc.url}/tasks`, { method: 'POST', json: { action: 'uppercase', data: { text } } });
    if (res.status === 202) {
      for (const id of res.body.ids ?? [res.body.id]) accepted.add(id as string);
    } else refusals.push(res);
    return res;
  };

  // A reader's snapshot keeps the checkpointer from copying the WAL into the database file, so
  // the tasks accepted before the disk fills are still in the WAL when it does: the checkpoint
  // that follows must grow the file, and fails.
  const snapshot = new Database(db, { readonly: true });
  snapshot.exec('BEGIN');
  snapshot.prepare('SELECT count(*) FROM tasks').get();

  // Four clients post until twenty requests in a row were refused; the disk fills under them
  // once 100 tasks are in.
  let refusedInARow = 0;
  let filled = 0;
  const client = async () => {
    while (refusedInARow < 20 && n < 5000) {
      const res = await post();
      refusedInARow = res.status === 202 ? 0 : refusedInARow + 1;
      if (filled === 0 && accepted.size >= 100) filled = fillUp(filler);
    }
  };
  await Promise.all(Array.from({ length: 4 }, client));
  expect(filled, `${accepted.size} accepted before the disk filled up by itself`).toBeGreaterThan(0);
  expect(refusedInARow, `${n} requests, ${accepted.size} tasks accepted`).toBeGreaterThanOrEqual(20);
  for (const res of refusals) {
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body.error).toMatch(/disk is full|database or disk is full/i);
  }
  const health = await http(`${svc.url}/healthz`);
  console.log(
    `disk full: filler ${filled} bytes, ${accepted.size} tasks accepted, ${refusals.length} requests refused; /healthz ${health.status} ${JSON.stringify(health.body.checks)}`,
  );

  snapshot.exec('COMMIT');
  snapshot.close();
  await eventually(() => /WAL checkpoint failed: .*disk is full/.test(svc.output()), 10_000);

  // Space returns: the same process stores and runs work again.
  rmSync(filler);
  const after = await eventually(async () => {
    const res = await post();
    return res.status === 202 ? res : null;
  }, 20_000);
  expect(after.status).toBe(202);
  const reader = new SqliteDriver({ path: db });
  try {
    await drained(reader);
    for (const id of accepted) {
      const task = await reader.getTask({ id });
      expect(task?.status, `task ${id}`).toBe('completed');
    }
  } finally {
    await reader.close();
  }
  // The checkpoint thread (every 200 ms) says so once it succeeds again.
  await eventually(() => /WAL checkpoints succeed again/.test(svc.output()), 10_000);
  svc.child.kill('SIGTERM');
  expect(await svc.exited).toBe(0);
  const check = new Database(db, { readonly: true });
  try {
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
  } finally {
    check.close();
  }
});
