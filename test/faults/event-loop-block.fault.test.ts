/**
 * A handler that blocks the event loop (a busy loop) for longer than the lease, on both drivers:
 * worker process A runs it and stops turning; worker process B rescues the task once A's lease
 * has expired and completes it. When A's loop frees, its /healthz answers 503 "event loop
 * blocked for N ms", turns 200 again one lease later, and A takes work again. The task ran
 * twice (A's attempt, B's attempt) and its result is B's: A's late ack is refused by the lease.
 * The block ends when the test writes the release file, not after a set time.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { PostgresDriver } from '../../src/drivers/postgres/postgres-driver.js';
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { newTask } from '../support/factories.js';
import { FAULT_HANDLERS, readExecutions } from '../support/executions.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from '../support/postgres.js';
import { childProcesses, runCli, type RunningService } from '../support/process.js';
import { eventually, http } from '../support/service.js';
import { tempDir } from '../support/temp.js';

const LEASE_MS = 1000;
const children = childProcesses();
let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await children.killAll();
  for (const fn of cleanups.reverse()) await fn();
  cleanups = [];
});

interface Store {
  /** The --db argument of the processes. */
  db: string;
  driver: QueueDriver;
}

const stores: [string, { skip?: { reason: string }; open: (dir: string) => Promise<Store> }][] = [
  [
    'sqlite',
    {
      open: async (dir) => {
        const db = join(dir, 'tasks.db');
        expect(runCli(['migrate', '--db', db]).code).toBe(0);
        return { db, driver: new SqliteDriver({ path: db }) };
      },
    },
  ],
  [
    'postgres',
    {
      skip: postgresSkip(),
      open: async () => {
        const url = postgresTestUrl() as string;
        const schema = randomSchema();
        cleanups.push(() => dropSchema(url, schema));
        const db = new URL(url);
        db.searchParams.set('schema', schema);
        expect(runCli(['migrate', '--db', db.toString()]).code).toBe(0);
        return {
          db: db.toString(),
          driver: new PostgresDriver({ connectionString: url, poolSize: 2, schema }),
        };
      },
    },
  ],
];

describe.each(stores)('event loop blocked past the lease (%s)', (_name, { skip, open }) => {
  it.skipIf(skip)(
    'another process rescues the task; the blocked one reports it, recovers and works again',
    async () => {
      const dir = tempDir();
      cleanups.push(dir.cleanup);
      const { db, driver } = await open(dir.dir);
      cleanups.push(() => driver.close());
      const executions = join(dir.dir, 'executions.log');
      const release = join(dir.dir, 'release');
      const args = ['--db', db, '--role', 'worker', '--handlers', FAULT_HANDLERS, '--log-level', 'info'];
      const timing = ['--lease-ms', String(LEASE_MS), '--poll-ms', '50', '--backoff-ms', '50'];
      const env = { TASKQ_TEST_EXECUTIONS: executions };
      const health = (node: RunningService) => http(`${node.url}/healthz`);
      const insert = async (data: Record<string, string>) => {
        const now = Date.now();
        const [inserted] = await driver.insertTasks({
          tasks: [newTask({ action: 'block', data }, now)],
          now,
        });
        return inserted?.task.id as string;
      };

      const a = await children.start([...args, ...timing], { ...env, TASKQ_TEST_BLOCK: '1' });
      await eventually(async () => (await health(a)).status === 200);
      const id = await insert({ release });
      await eventually(() => readExecutions(executions).get(id)?.[0] === a.child.pid);

      // A spins. B, started now, rescues the task once A's lease has run out, and completes it.
      const b = await children.start([...args, ...timing], env);
      const done = await eventually(async () => {
        const task = await driver.getTask({ id });
        return task?.status === 'completed' ? task : null;
      }, 20_000);
      expect(done).toMatchObject({ attempts: 2, result: { pid: b.child.pid } });
      expect(existsSync(release)).toBe(false); // A has been blocked all along

      // A's health check waits for its loop; the answer comes once the loop is free.
      const blocked = health(a);
      writeFileSync(release, '');
      const answer = await blocked;
      expect(answer.status).toBe(503);
      expect(answer.body.checks.workers).toMatch(/event loop blocked for \d+ ms/);
      const blockedMs = Number(/blocked for (\d+) ms/.exec(answer.body.checks.workers)?.[1]);
      expect(blockedMs).toBeGreaterThan(LEASE_MS);
      const freedAt = Date.now();
      await eventually(async () => (await health(a)).status === 200, 10_000);
      const unhealthyMs = Date.now() - freedAt;
      expect(unhealthyMs).toBeGreaterThanOrEqual(LEASE_MS - 100); // the stated window: one lease

      // A takes work again (B is gone, so it must be A); A's late result changed nothing.
      b.child.kill('SIGKILL');
      await b.exited;
      const next = await insert({ release });
      const finished = await eventually(async () => {
        const task = await driver.getTask({ id: next });
        return task?.status === 'completed' ? task : null;
      }, 10_000);
      expect(finished).toMatchObject({ attempts: 1, result: { pid: a.child.pid } });
      expect(await driver.getTask({ id })).toMatchObject({ attempts: 2, result: { pid: b.child.pid } });
      expect(readExecutions(executions).get(id)).toEqual([a.child.pid, b.child.pid]);
      console.log(
        `event loop block (${_name}): blocked ${blockedMs} ms, /healthz 503 "${answer.body.checks.workers}", 200 again ${unhealthyMs} ms after the loop freed`,
      );
    },
  );
});
