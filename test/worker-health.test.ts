/**
 * /healthz of a worker-only node (the built `taskq run --role worker`): 200 while its pool can
 * claim, 503 naming the workers once claims have failed for longer than a lease, and 200 again
 * when the database is back. On PostgreSQL the database goes away through a TCP proxy the test
 * cuts; on SQLite another connection holds the write lock, so only the workers' check fails.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from './support/postgres.js';
import { runCli, startCli, type RunningService } from './support/process.js';
import { tcpProxy, throughProxy, type TcpProxy } from './support/proxy.js';
import { eventually, finished, http } from './support/service.js';
import { tempDir } from './support/temp.js';

const skip = postgresSkip();
let running: RunningService[] = [];
let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const svc of running) svc.child.kill('SIGKILL');
  await Promise.all(running.map((svc) => svc.exited));
  running = [];
  for (const fn of cleanups.reverse()) await fn();
  cleanups = [];
});

async function start(args: string[]): Promise<RunningService> {
  const node = await startCli([...args, '--log-level', 'info']);
  running.push(node);
  return node;
}

type Health = { status: number; body: { checks?: { database?: string; workers?: string } } };
const health = async (node: RunningService): Promise<Health> => http(`${node.url}/healthz`);
// The worker's health is another process's state, reached by time passing (a lease without a
// claim) with no event this process can hear: the waits on it poll /healthz.

it.skipIf(skip)('a worker node turns unhealthy while PostgreSQL is unreachable, and recovers', async () => {
  const url = new URL(postgresTestUrl() as string);
  const schema = randomSchema();
  const link: TcpProxy = await tcpProxy(url);
  cleanups.push(
    () => dropSchema(url.toString(), schema),
    () => link.cut().catch(() => {}),
  );
  const direct = new URL(url);
  direct.searchParams.set('schema', schema);
  const proxied = throughProxy(direct, link);
  expect(runCli(['migrate', '--db', direct.toString()]).code).toBe(0);
  const worker = await start([
    '--db',
    proxied.toString(),
    '--role',
    'worker',
    '--lease-ms',
    '1000',
    '--poll-ms',
    '100',
  ]);
  const api = await start(['--db', direct.toString(), '--role', 'api']);

  const healthy = async () => {
    const h = await health(worker);
    return h.status === 200 && h.body.checks?.workers === 'ok';
  };
  await eventually(healthy, 10_000);

  await link.cut();
  const cutAt = Date.now();
  const down = await eventually(async () => {
    const h = await health(worker);
    return h.status === 503 && h.body.checks?.workers !== 'ok' ? h : null;
  }, 20_000);
  expect(down.body.checks?.workers).toMatch(/cannot claim work/);
  console.log(`worker health (PostgreSQL): 503 ${Date.now() - cutAt} ms after the cut`);

  await link.restore();
  await eventually(healthy, 20_000);
  // And it works again: a task posted to the API node is run by the worker node.
  const created = await http(`${api.url}/tasks`, {
    method: 'POST',
    json: { action: 'uppercase', data: { text: 'back' } },
  });
  expect(created.status).toBe(202);
  const done = await finished((path) => http(`${api.url}${path}`), created.body.id as string, 20);
  expect(done.status).toBe('completed');
  expect(done.result).toEqual({ output: 'BACK' });
});

it('a worker node turns unhealthy while it cannot claim from its SQLite file, and recovers', async () => {
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  const db = join(dir.dir, 'tasks.db');
  expect(runCli(['migrate', '--db', db]).code).toBe(0);
  const worker = await start(['--db', db, '--role', 'worker', '--lease-ms', '1000', '--poll-ms', '100']);
  await eventually(async () => (await health(worker)).status === 200, 10_000);

  // Another process-like connection takes the write lock and keeps it: reads still work, so the
  // database check stays ok, but every claim fails.
  const locker = new Database(db);
  cleanups.push(() => {
    if (locker.inTransaction) locker.exec('ROLLBACK');
    locker.close();
  });
  locker.exec('BEGIN IMMEDIATE');
  const down = await eventually(
    async () => {
      const h = await health(worker);
      return h.status === 503 ? h : null;
    },
    30_000,
    100,
  );
  expect(down.body.checks?.database).toBe('ok');
  // The first write of this process to meet the lock (a claim, the node heartbeat) waits out
  // busy_timeout synchronously, SQLite's busy wait, so the first 503 may name the blocked event
  // loop instead of the claims (later writes wait only briefly: sqlite-driver.ts, `write`).
  expect(down.body.checks?.workers).toMatch(/cannot claim work|event loop blocked/);

  locker.exec('ROLLBACK');
  await eventually(async () => (await health(worker)).status === 200, 30_000, 100);
});
