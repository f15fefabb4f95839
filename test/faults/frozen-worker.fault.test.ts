/**
 * A worker frozen past its lease (SIGSTOP) and woken again (SIGCONT), on both drivers: its tasks
 * are rescued and completed by another worker, and what the woken worker then sends for them (a
 * late ack, a late progress write, a heartbeat for a task it still thinks it holds) changes
 * nothing: each task keeps the other worker's result, progress and attempt count. The woken
 * worker then carries on and completes new work.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema, withSchema } from '../support/postgres.js';
import { nextOutputLine, runCli, startCli, type RunningService } from '../support/process.js';
import { eventually, http } from '../support/service.js';
import { tempDir } from '../support/temp.js';

const HANDLERS = new URL('../fixtures/fault-handlers/', import.meta.url).pathname;
const LEASE_MS = 1500;
/** How long each attempt of the held tasks takes: long enough to freeze the worker mid-way. */
const HOLD_MS = 1500;

let running: RunningService[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const svc of running) {
    svc.child.kill('SIGCONT'); // a test that failed may leave one frozen
    svc.child.kill('SIGKILL');
  }
  await Promise.all(running.map((svc) => svc.exited));
  running = [];
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface TaskView {
  id: string;
  status: string;
  attempts: number;
  result: { output: number; pid: number; attempt: number } | null;
  progress: number | null;
  progress_message: string | null;
  error: string | null;
  processed_at: string | null;
}

async function task(api: string, id: string): Promise<TaskView> {
  const res = await http(`${api}/tasks/${id}`);
  expect(res.status).toBe(200);
  return res.body as TaskView;
}

/**
 * SIGSTOPs `svc`, retrying (SIGCONT, SIGSTOP again) while `busy()` says the stop landed somewhere
 * it must not (SQLite: inside a write, which would hold every other process's writes too).
 */
function freeze(svc: RunningService, busy: () => boolean = () => false): void {
  for (let i = 0; i < 20; i++) {
    svc.child.kill('SIGSTOP');
    if (!busy()) return;
    svc.child.kill('SIGCONT');
  }
  throw new Error('could not freeze the worker outside a write');
}

async function frozenWorkerCase(db: string, busy?: () => boolean): Promise<void> {
  const migrated = runCli(['migrate', '--db', db]);
  expect(migrated.code, migrated.stderr).toBe(0);
  const common = ['--db', db, '--handlers', HANDLERS, '--log-level', 'info', '--poll-ms', '100'];
  const worker = (concurrency: number) => [
    ...common,
    '--role',
    'worker',
    '--concurrency',
    String(concurrency),
    '--prefetch',
    '1',
    '--lease-ms',
    String(LEASE_MS),
    '--task-timeout-ms',
    '60000',
  ];
  const start = async (args: string[]) => {
    const svc = await startCli(args);
    running.push(svc);
    return svc;
  };
  const api = (await start([...common, '--role', 'api'])).url;
  const a = await start(worker(1));
  const aPid = a.child.pid as number;

  // A claims both: the first runs, the second waits in its prefetch buffer.
  const posted = await http(`${api}/tasks/batch`, {
    method: 'POST',
    json: { tasks: [1, 3].map((n) => ({ action: 'work', data: { n, holdMs: HOLD_MS } })) },
  });
  expect(posted.status).toBe(202);
  const [runningId, bufferedId] = posted.body.ids as [string, string];
  await eventually(async () => {
    const [r, b] = await Promise.all([task(api, runningId), task(api, bufferedId)]);
    return r.progress_message === `started by ${aPid}` && b.status === 'running';
  });

  freeze(a, busy);
  // B comes up only now, so it cannot have claimed either task before A froze.
  const b = await start(worker(2));
  const bPid = b.child.pid as number;
  const ids = [runningId, bufferedId];
  await eventually(
    async () => (await Promise.all(ids.map((id) => task(api, id)))).every((t) => t.status === 'completed'),
    20_000,
    50,
  );
  const before = await Promise.all(ids.map((id) => task(api, id)));
  for (const t of before) {
    expect(t.result?.pid, `task ${t.id}`).toBe(bPid);
    expect(t.attempts, `task ${t.id}`).toBe(2); // A's expired attempt, then B's
    expect(t.result?.attempt, `task ${t.id}`).toBe(2);
    expect(t.progress_message, `task ${t.id}`).not.toContain(String(aPid));
  }

  // Woken, A finishes the first task (late progress and ack), starts the buffered one (a late
  // progress write) and renews its leases, which tells it that they are gone.
  const leaseLost = nextOutputLine(a, /lease lost while running/, 20_000);
  a.child.kill('SIGCONT');
  await leaseLost;
  // With B gone, A alone can run a new task; its results are written in order, so once this one
  // is completed, the late ack written before it has been sent too.
  b.child.kill('SIGTERM');
  expect(await b.exited).toBe(0);
  const next = await http(`${api}/tasks`, { method: 'POST', json: { action: 'work', data: { n: 5 } } });
  expect(next.status).toBe(202);
  await eventually(async () => (await task(api, next.body.id)).status === 'completed', 20_000, 50);
  expect((await task(api, next.body.id)).result?.pid).toBe(aPid);

  const after = await Promise.all(ids.map((id) => task(api, id)));
  expect(after, 'the tasks as B left them').toEqual(before);
  expect(a.child.pid).toBe(aPid);
  expect(a.child.exitCode).toBeNull();
}

describe('a worker frozen past its lease and woken again', () => {
  it('on SQLite: changes nothing of the tasks another worker completed meanwhile', async () => {
    const started = Date.now();
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const path = join(dir.dir, 'tasks.db');
    // Whether some process holds the write lock: a write transaction that cannot wait says so.
    const writeLocked = () => {
      const probe = new Database(path, { timeout: 0 });
      try {
        probe.exec('BEGIN IMMEDIATE; ROLLBACK');
        return false;
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
        throw err;
      } finally {
        probe.close();
      }
    };
    await frozenWorkerCase(path, writeLocked);
    console.log(`frozen worker (sqlite): ${Date.now() - started} ms`);
  });

  const skip = postgresSkip();
  (skip ? it.skip : it)(
    'on PostgreSQL: changes nothing of the tasks another worker completed meanwhile',
    async () => {
      const started = Date.now();
      const url = postgresTestUrl() as string;
      const schema = randomSchema();
      cleanups.push(() => dropSchema(url, schema));
      await frozenWorkerCase(withSchema(url, schema));
      console.log(`frozen worker (postgres): ${Date.now() - started} ms`);
    },
  );
});
