/**
 * Both drivers on a fresh database each, for `describe.each(BOTH_DRIVERS)`: the name, an opener
 * (a driver, a peer opener and a cleanup), and whether this run must skip it (no PostgreSQL).
 */
import { isolatedPostgres, postgresSkip, postgresTestUrl } from './postgres.js';
import { isolatedSqlite } from './sqlite.js';

export const BOTH_DRIVERS = [
  ['sqlite', () => isolatedSqlite(), false],
  ['postgres', () => isolatedPostgres(postgresTestUrl() ?? ''), postgresSkip() !== undefined],
] as const;
