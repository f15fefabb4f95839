/**
 * Storage access for the bench, through the driver seam (openDriver), so the same bench runs on
 * SQLite files and on PostgreSQL (`--db postgres://...`). The one exception: a PostgreSQL schema
 * is emptied with TRUNCATE, as the peers empty theirs, so every run starts on a table of its own
 * size (pruning the memory scenario's 1.2M rows left a 1.4 GB table whose claims then took
 * seconds each); through the driver only where TRUNCATE is not allowed.
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
import { plainPgUrl, taskqSchema } from './pg-cpu.js';
import { now, sleep, waitUntil } from './util.js';

export async function open(db: string): Promise<QueueDriver> {
  const config = resolveConfig({ db });
  const driver = await openDriver(config);
  await driver.migrate();
  return driver;
}

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A database with no tasks for one scenario: a new SQLite file in a temp folder, or, for
 * PostgreSQL, the given database emptied through the driver (every task is finished and pruned).
 */
export async function freshDb(base: string | undefined): Promise<string> {
  if (base && isPostgresUrl(base)) {
    const driver = await open(base); // creates the schema on first use
    await driver.close();
    if (!(await truncateSchema(base))) await emptyTasks(base);
    return base;
  }
  const dir = mkdtempSync(join(base ?? tmpdir(), 'taskq-bench-'));
  tempDirs.push(dir);
  return join(dir, 'tasks.db');
}

/**
 * Completes what is queued (claimed and completed in batches, as a worker would: an api-only run
 * can leave hundreds of thousands, too many to cancel one by one), cancels what is left (delayed
 * tasks), and prunes everything finished (bounded loops).
 */
async function emptyTasks(db: string): Promise<void> {
  const driver = await open(db);
  try {
    // Running tasks (a worker stopped while holding them) go back to queued once their lease
    // expires: up to 60 passes a second apart.
    for (let pass = 0; pass < 60; pass++) {
      await finishQueued(driver);
      await driver.rescueExpiredLeases({ now: Date.now() });
      if ((await driver.countTasks()).byStatus.running === 0) break;
      await sleep(1000);
    }
    await finishQueued(driver);
    const future = Date.now() + 60_000;
    for (let round = 0; round < 10_000; round++) {
      const n = await driver.pruneTasks({
        finishedBefore: { completed: future, failed: future, cancelled: future },
        limit: 10_000,
      });
      if (n === 0) break;
    }
    const left = await totalTasks(driver);
    if (left > 0) throw new Error(`could not empty ${db}: ${left} tasks left (running ones?)`);
  } finally {
    await driver.close();
  }
}

async function finishQueued(driver: QueueDriver): Promise<void> {
  for (let round = 0; round < 10_000; round++) {
    const now = Date.now();
    const claimed = await driver.claimTasks({ owner: 'bench-empty', limit: 5000, now, leaseMs: 60_000 });
    if (claimed.length === 0) break;
    const completions = claimed.map(({ id, seq, attempts }) => ({
      id,
      seq,
      attempt: attempts,
      owner: 'bench-empty',
      result: null,
    }));
    await driver.completeTasks({ completions, now });
  }
  for (let round = 0; round < 10_000; round++) {
    const page = await driver.listTasks({ status: 'queued', limit: 1000 });
    if (page.length === 0) break;
    for (const t of page) await driver.cancelTask({ id: t.id, now: Date.now() });
  }
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

/** TRUNCATEs every table but the migrations in taskq's schema of `db`; false if not allowed. */
function truncateSchema(db: string): Promise<boolean> {
  return withSchemaTables(db, async (client, tables) => {
    const data = tables.filter((t) => !t.endsWith('migrations'));
    if (data.length === 0) return false;
    return client.query(`TRUNCATE ${data.join(', ')}`).then(
      () => true,
      () => false,
    );
  });
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
