/**
 * The composition root's only knowledge of concrete drivers: a postgres:// URL opens the
 * PostgreSQL driver, anything else is a SQLite file path.
 */
import { ConfigError, QueueError } from '../core/errors.js';
import { isPostgresUrl, type Config } from '../core/config.js';
import type { Logger } from 'pino';
import type { QueueDriver } from './driver.js';
import { SqliteDriver } from './sqlite/sqlite-driver.js';

/** `logger` hears of lost database connections (PostgreSQL) and failing checkpoints (SQLite). */
export async function openDriver(
  config: Pick<Config, 'db' | 'sync' | 'pgPoolSize'> & Partial<Pick<Config, 'attemptHistory'>>,
  logger?: Logger,
): Promise<QueueDriver> {
  const attemptHistoryMax = config.attemptHistory;
  if (isPostgresUrl(config.db)) {
    const { PostgresDriver } = await import('./postgres/postgres-driver.js');
    return new PostgresDriver({
      connectionString: config.db,
      poolSize: config.pgPoolSize,
      logger,
      attemptHistoryMax,
    });
  }
  try {
    return new SqliteDriver({ path: config.db, sync: config.sync, logger, attemptHistoryMax });
  } catch (err) {
    if (err instanceof QueueError) throw new ConfigError(`--db (TASKQ_DB): ${err.message}`);
    throw err;
  }
}
