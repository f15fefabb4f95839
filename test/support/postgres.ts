/**
 * PostgreSQL for tests. The URL comes from TASKQ_TEST_POSTGRES_URL. Without it, PostgreSQL suites
 * are skipped, except under CI, where they are required and missing it fails. The one console
 * line that says they were skipped comes from `setup` below (a vitest globalSetup), so a run
 * prints it once rather than once per file. Each test gets its own schema, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresDriver } from '../../src/drivers/postgres/postgres-driver.js';

const SKIP_MESSAGE = 'PostgreSQL tests skipped: set TASKQ_TEST_POSTGRES_URL=postgres://... to run them';
/** The test database URL, or undefined when PostgreSQL tests should skip; throws under CI. */
export function postgresTestUrl(): string | undefined {
  const url = process.env.TASKQ_TEST_POSTGRES_URL;
  if (url) return url;
  if (process.env.CI === 'true') {
    throw new Error('TASKQ_TEST_POSTGRES_URL is required under CI: PostgreSQL tests must run there');
  }
  return undefined;
}

/** vitest globalSetup: runs once per test run. */
export function setup(): void {
  if (postgresTestUrl() === undefined) console.warn(SKIP_MESSAGE);
}

/** `{ reason }` to pass as a suite's skip when there is no test database. */
export function postgresSkip(): { reason: string } | undefined {
  return postgresTestUrl() === undefined ? { reason: SKIP_MESSAGE } : undefined;
}

export function randomSchema(): string {
  return `taskq_test_${randomBytes(6).toString('hex')}`;
}

/** Drops a test schema and everything in it. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** A driver on a fresh schema of the test database, with a peer opener and a cleanup. */
export function isolatedPostgres(url: string, poolSize = 4) {
  const schema = randomSchema();
  const open = () => new PostgresDriver({ connectionString: url, poolSize, schema });
  return { schema, driver: open(), openPeer: async () => open(), cleanup: () => dropSchema(url, schema) };
}

/** `url` with `?schema=` set: what the CLI takes to use one schema of the test database. */
export function withSchema(url: string, schema: string): string {
  const db = new URL(url);
  db.searchParams.set('schema', schema);
  return db.toString();
}
