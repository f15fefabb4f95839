import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { tempDbPath } from '../support/temp.js';
import { describeDriverContract } from './driver-contract.js';

describeDriverContract('sqlite', {
  makeDriver: async () => {
    const { path, cleanup } = tempDbPath();
    return {
      driver: new SqliteDriver({ path }),
      openPeer: async () => new SqliteDriver({ path }),
      cleanup: async () => cleanup(),
    };
  },
});
