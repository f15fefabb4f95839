/**
 * Both drivers on a fresh database each, for `describe.each(BOTH_DRIVERS)`: the name, an opener
 * (a driver, a peer opener and a cleanup), and whether this run must skip it (no PostgreSQL).
 */
import {
  dropSchema,
  isolatedPostgres,
  postgresSkip,
  postgresTestUrl,
  randomSchema,
  withSchema,
} from './postgres.js';
import { afterEach } from 'vitest';
import type { ConfigInput } from '../../src/core/config.js';
import type { HandlerDefinition } from '../../src/handlers/handler.js';
import { startTestApp, type TestApp } from './service.js';
import { isolatedSqlite } from './sqlite.js';

export const BOTH_DRIVERS = [
  ['sqlite', () => isolatedSqlite(), false],
  ['postgres', () => isolatedPostgres(postgresTestUrl() ?? ''), postgresSkip() !== undefined],
] as const;

/**
 * Both drivers for a service test (`startTestApp({ db })`): the `db` setting to use (undefined: a
 * fresh SQLite file of its own; else a fresh schema of the test database) with its cleanup, and
 * whether this run must skip it.
 */
export const BOTH_SERVICE_DBS = [
  ['sqlite', () => ({ db: undefined, cleanup: async () => {} }), false],
  [
    'postgres',
    () => {
      const url = postgresTestUrl() ?? '';
      const schema = randomSchema();
      return { db: withSchema(url, schema), cleanup: () => dropSchema(url, schema) };
    },
    postgresSkip() !== undefined,
  ],
] as const;

/** One of BOTH_SERVICE_DBS's openers. */
export type ServiceDb = (typeof BOTH_SERVICE_DBS)[number][1];

/**
 * For a `describe.each(BOTH_SERVICE_DBS)` block: a function that starts a test app on a fresh
 * database of that kind; the app is stopped and its database dropped after each test.
 */
export function appsOn(
  database: ServiceDb,
): (overrides?: ConfigInput, handlers?: HandlerDefinition[]) => Promise<TestApp> {
  let app: TestApp | undefined;
  let cleanup: () => Promise<void> = async () => {};
  afterEach(async () => {
    await app?.stop();
    app = undefined;
    await cleanup();
  });
  return async (overrides = {}, handlers = []) => {
    const { db, cleanup: drop } = database();
    cleanup = drop;
    app = await startTestApp({ ...(db === undefined ? {} : { db }), ...overrides }, handlers);
    return app;
  };
}
