/**
 * Storage access for the bench, through the driver seam (openDriver), so the same bench runs on
 * SQLite files and on PostgreSQL (`--db postgres://...`). The one exception: each PostgreSQL
 * scenario drops and re-creates its schema, as the peers TRUNCATE theirs, so every run starts on
 * a table of its own size (pruning the memory scenario's 1.2M rows left a 1.4 GB table whose
 * claims then took seconds each; autovacuum is off on this machine).
 */
import { newTask } from '../../test/support/factories.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPostgresUrl, resolveConfig } from '../../src/core/config.js';
import type { NewTask } from '../../src/core/task.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { openDriver } from '../../src/drivers/open-driver.js';
import pg from 'pg';
import { withDefaultSchema } from './fill.js';
import { plainPgUrl, taskqSchema } from './pg-cpu.js';
import { now, waitUntil } from './util.js';

export async function open(db: string): Promise<QueueDriver> {
  const config = resolveConfig({ db });
  const driver = await openDriver(config);
  await driver.migrate();
  return driver;
}

const BENCH_SCHEMA = 'taskq_bench';
const tempDirs: string[] = [];
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A database with no tasks for one scenario: a new SQLite file in a temp folder, or, for
 * PostgreSQL, the URL's `?schema=` (else `defaultSchema`, `taskq_bench` unless the caller names
 * its own; never the service's own `taskq`) dropped and created again: a table without the dead
 * rows of earlier scenarios, as the peers start from a TRUNCATEd table.
 */
export async function freshDb(base: string | undefined, defaultSchema = BENCH_SCHEMA): Promise<string> {
  if (base && isPostgresUrl(base)) {
    const url = withDefaultSchema(base, defaultSchema);
    await recreateSchema(url);
    return url;
  }
  const dir = mkdtempSync(join(base ?? tmpdir(), 'taskq-bench-'));
  tempDirs.push(dir);
  return join(dir, 'tasks.db');
}

async function recreateSchema(db: string): Promise<void> {
  const schema = taskqSchema(db);
  const client = new pg.Client({ connectionString: plainPgUrl(db) });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
  const driver = await open(db);
  await driver.close();
}

/** Runs `fn` with a client on `db` and the quoted names of the tables in taskq's schema there. */
async function withSchemaTables<T>(
  db: string,
  fn: (client: pg.Client, tables: string[]) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: plainPgUrl(db) });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = $1",
      [taskqSchema(db)],
    );
    return await fn(
      client,
      rows.map((r) => r.name),
    );
  } finally {
    await client.end();
  }
}

/** ANALYZE of taskq's tables in `db` after a fill, as the peers do after theirs (PostgreSQL). */
export async function analyzeSchema(db: string): Promise<void> {
  if (!isPostgresUrl(db)) return;
  await withSchemaTables(db, async (client, tables) => {
    for (const name of tables) await client.query(`ANALYZE ${name}`);
  });
}

export function noopTask(i: number, now: number): NewTask {
  return newTask({ action: 'noop', data: { i } }, now);
}

/** Inserts `n` no-op tasks in batches of `batch`, each batch one transaction. */
export async function fill(driver: QueueDriver, n: number, batch = 1000): Promise<void> {
  for (let i = 0; i < n; i += batch) {
    const now = Date.now();
    const tasks: NewTask[] = [];
    for (let j = i; j < Math.min(n, i + batch); j++) tasks.push(noopTask(j, now));
    await driver.insertTasks({ tasks, now });
  }
}

export async function totalTasks(driver: QueueDriver): Promise<number> {
  const { byStatus } = await driver.countTasks();
  return Object.values(byStatus).reduce((a, b) => a + b, 0);
}

export async function completedTasks(driver: QueueDriver): Promise<number> {
  return (await driver.countTasks()).byStatus.completed;
}

/** Waits (bounded) until `n` tasks are completed; returns the milliseconds since `t0` or throws. */
export async function waitCompleted(
  driver: QueueDriver,
  n: number,
  t0: number,
  timeoutMs = 120_000,
): Promise<number> {
  let completed = 0;
  const ok = await waitUntil(
    async () => {
      completed = await completedTasks(driver);
      return completed >= n;
    },
    { intervalMs: 10, timeoutMs },
  );
  if (!ok) throw new Error(`only ${completed} of ${n} tasks completed within ${timeoutMs} ms`);
  return now() - t0;
}
