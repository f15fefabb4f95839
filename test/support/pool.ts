/** A real SQLite driver and worker pool, wired by hand, for queue-semantics tests. */
import { pino } from 'pino';
import type { NewTask, TaskRecord } from '../../src/core/task.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import type { HandlerDefinition } from '../../src/handlers/handler.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { WorkerPool, type WorkerPoolOptions } from '../../src/worker/worker-pool.js';
import { tempDbPath } from './temp.js';

export async function openTestDriver(): Promise<{
  driver: SqliteDriver;
  path: string;
  cleanup: () => Promise<void>;
}> {
  const db = tempDbPath();
  const driver = new SqliteDriver({ path: db.path });
  await driver.migrate();
  return {
    driver,
    path: db.path,
    cleanup: async () => {
      await driver.close();
      db.cleanup();
    },
  };
}

export { newTask } from './factories.js';

export function makePool(
  driver: QueueDriver,
  handlers: HandlerDefinition[],
  options: Partial<Omit<WorkerPoolOptions, 'driver' | 'registry' | 'logger'>> = {},
): WorkerPool {
  return new WorkerPool({
    driver,
    registry: new HandlerRegistry(handlers, true),
    logger: pino({ level: 'silent' }),
    concurrency: 2,
    prefetch: 5,
    leaseMs: 10_000,
    pollMs: 50,
    taskTimeoutMs: 10_000,
    backoff: { baseMs: 20, maxMs: 1000 },
    ...options,
  });
}

/** Inserts tasks through the driver and returns their records, in order. */
export async function insert(driver: SqliteDriver, ...tasks: NewTask[]): Promise<TaskRecord[]> {
  return (await driver.insertTasks({ tasks, now: Date.now() })).map((r) => r.task);
}

export async function insertOne(driver: SqliteDriver, task: NewTask): Promise<TaskRecord> {
  const [record] = await insert(driver, task);
  if (!record) throw new Error('insert returned nothing');
  return record;
}
