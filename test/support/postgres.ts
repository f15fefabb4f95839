/**
 * PostgreSQL for tests. The URL is TASKQ_TEST_POSTGRES_URL, or else the local test database
 * (`DEFAULT_URL`) when it answers. `setup` below, a vitest globalSetup, decides once per run: it
 * probes the local database when no URL is set, hands the result to the test workers through
 * vitest's `provide`, and prints the one line that says PostgreSQL suites are skipped. Under CI a
 * database that does not answer fails the run instead. Each test gets its own schema, dropped
 * afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { TestProject } from 'vitest/node';
import { PostgresDriver } from '../../src/drivers/postgres/postgres-driver.js';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/test';
const PROBE_TIMEOUT_MS = 1000;
const SKIP_MESSAGE = `PostgreSQL tests skipped: nothing answers at ${DEFAULT_URL} and TASKQ_TEST_POSTGRES_URL is not set`;

declare module 'vitest' {
  export interface ProvidedContext {
    /** The PostgreSQL URL the suites use, or null when they skip. */
    postgresUrl: string | null;
  }
}

/** Whether a PostgreSQL server accepts a connection and a query at `url`, within the probe timeout. */
async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  // A refused or failed connection also emits 'error'; without a listener it would be thrown.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** vitest globalSetup: runs once per test run, before any test file. */
export async function setup(project: TestProject): Promise<void> {
  const configured = process.env.TASKQ_TEST_POSTGRES_URL;
  const url = configured || ((await answers(DEFAULT_URL)) ? DEFAULT_URL : null);
  if (url === null) {
    if (process.env.CI === 'true') {
      throw new Error(`PostgreSQL tests must run under CI, but nothing answers at ${DEFAULT_URL}`);
    }
    console.warn(SKIP_MESSAGE);
  }
  project.provide('postgresUrl', url);
}

/** The test database URL, or undefined when PostgreSQL tests should skip (decided by `setup`). */
export function postgresTestUrl(): string | undefined {
  return inject('postgresUrl') ?? undefined;
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
