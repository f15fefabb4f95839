/** SQLite for the contract suites: a driver on a fresh file, a peer opener, and a cleanup. */
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { tempDbPath } from './temp.js';

/** As `isolatedPostgres`: another driver on the same file stands for another process. */
export function isolatedSqlite() {
  const { path, cleanup } = tempDbPath();
  const open = () => new SqliteDriver({ path });
  return { path, driver: open(), openPeer: async () => open(), cleanup: async () => cleanup() };
}
