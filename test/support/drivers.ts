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
