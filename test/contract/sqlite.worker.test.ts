import { isolatedSqlite } from '../support/sqlite.js';
import { describeWorkerContract } from './worker-contract.js';

describeWorkerContract('sqlite', { makeDriver: async () => isolatedSqlite() });
