/**
 * Filling a migrated database with many rows for the at-scale benches (stats-at-scale.ts,
 * filters-at-scale.ts): what is already there is reused, the rest is added in chunks, one
 * transaction each, with progress on stderr, and the planner's statistics are refreshed at the end.
 * Each bench says how a chunk of rows is made; this file says everything around it.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { ACTION_RING_MINUTES } from '../../src/core/actions.js';
import { isPostgresUrl } from '../../src/core/config.js';
import { TASK_STATUSES } from '../../src/core/task.js';
import {
  ACTION_RING_COLUMNS,
  ACTION_RING_SHARDS,
  runBucketCounts,
} from '../../src/drivers/postgres/migrations.js';

/**
 * The stats counters and rings of a PostgreSQL schema, rebuilt from its tasks: the driver's own
 * statements keep them (queries.ts, COUNT_CHANGES), so a raw fill leaves them empty, and reads of
 * empty counters cost less than real ones. Rows are spread over the shards as many writers leave
 * them (by seq), so a read sums as many rows as it would in production.
 */
export async function rebuildPostgresStats(client: pg.Client): Promise<void> {
  const now = Date.now();
  const minute = (at: string) => `((${at}) / 60000) * 60000`;
  const finished = (windowMinutes: number) =>
    `status IN ('completed', 'failed') AND processed_at > ${now} - ${windowMinutes} * 60000`;
  await client.query('DELETE FROM task_counts');
  await client.query(`
    INSERT INTO task_counts (action, shard, ${TASK_STATUSES.join(', ')})
    SELECT action, seq % 64, ${TASK_STATUSES.map((s) => `count(*) FILTER (WHERE status = '${s}')`).join(', ')}
      FROM tasks GROUP BY action, seq % 64`);
  await client.query('DELETE FROM task_throughput');
  await client.query(`
    INSERT INTO task_throughput (slot, shard, minute, completed, failed)
    SELECT (${minute('processed_at')} / 60000 % 1440)::int, seq % 64, ${minute('processed_at')},
           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
      FROM tasks WHERE ${finished(1440)} GROUP BY 1, 2, 3`);
  await client.query('DELETE FROM task_action_minutes');
  await client.query(`
    INSERT INTO task_action_minutes (action, slot, shard, minute, ${ACTION_RING_COLUMNS.join(', ')})
    SELECT action, (${minute('processed_at')} / 60000 % ${ACTION_RING_MINUTES})::int, seq % ${ACTION_RING_SHARDS},
           ${minute('processed_at')},
           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
           ${runBucketCounts('processed_at - started_at').join(', ')}
      FROM tasks WHERE ${finished(ACTION_RING_MINUTES)} GROUP BY 1, 2, 3, 4`);
}

export const log = (text: string) =>
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);

/** The schema a bench's `?schema=` names, or its own default. */
export function schemaOf(url: string, fallback: string): string {
  return new URL(url).searchParams.get('schema') ?? fallback;
}

/** `db` with `?schema=fallback` if it is a PostgreSQL URL that names no schema; a SQLite path as it is. */
export function withDefaultSchema(db: string, fallback: string): string {
  if (!isPostgresUrl(db)) return db;
  const url = new URL(db);
  if (!url.searchParams.has('schema')) url.searchParams.set('schema', fallback);
  return url.toString();
}

/** The URL without taskq's `?schema=` (node-postgres does not know it). */
export function withoutSchema(url: string): string {
  const u = new URL(url);
  u.searchParams.delete('schema');
  return u.toString();
}

/** Rows 1..rows in `schema`; `prepare` returns the writer of rows from..to (1-based, inclusive). */
export async function fillPostgres(options: {
  url: string;
  schema: string;
  rows: number;
  chunk: number;
  prepare: (client: pg.Client) => Promise<(from: number, to: number) => Promise<unknown>>;
  /** Run once after the rows are in, before VACUUM ANALYZE (e.g. rebuild what a raw fill skipped). */
  finish?: (client: pg.Client) => Promise<unknown>;
}): Promise<void> {
  const { rows, chunk } = options;
  const client = new pg.Client({
    connectionString: withoutSchema(options.url),
    options: `-c search_path=${options.schema}`,
  });
  await client.connect();
  try {
    const have = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM tasks')).rows[0]!.n);
    if (have >= rows) {
      log(`reusing ${have.toLocaleString()} rows`);
      return;
    }
    const write = await options.prepare(client);
    for (let from = have + 1; from <= rows; from += chunk) {
      const to = Math.min(rows, from + chunk - 1);
      await write(from, to);
      log(`filled ${to.toLocaleString()} / ${rows.toLocaleString()}`);
    }
    await options.finish?.(client);
    log('VACUUM ANALYZE tasks');
    await client.query('VACUUM ANALYZE tasks');
  } finally {
    await client.end();
  }
}

/** Rows 1..rows in the SQLite file at `path`; `prepare` returns the writer of rows from..to. */
export function fillSqlite(options: {
  path: string;
  rows: number;
  chunk: number;
  prepare: (conn: Database.Database) => (from: number, to: number) => void;
}): void {
  const { rows, chunk } = options;
  const conn = new Database(options.path, { timeout: 5000 });
  try {
    conn.pragma('journal_mode = WAL');
    conn.pragma('synchronous = NORMAL');
    conn.pragma('cache_size = -262144');
    const have = (conn.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n;
    if (have >= rows) {
      log(`reusing ${have.toLocaleString()} rows`);
      return;
    }
    const write = options.prepare(conn);
    for (let from = have + 1; from <= rows; from += chunk) {
      const to = Math.min(rows, from + chunk - 1);
      conn.transaction(() => write(from, to))();
      log(`filled ${to.toLocaleString()} / ${rows.toLocaleString()}`);
    }
    // Rows were given their seq by the fill: new tasks must be numbered after them.
    conn.exec(`UPDATE taskq_meta SET value = max(value, ${rows}) WHERE name = 'seq_floor'`);
    log('ANALYZE');
    conn.exec('ANALYZE');
    conn.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    conn.close();
  }
}
