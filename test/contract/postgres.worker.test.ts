import { isolatedPostgres, postgresSkip, postgresTestUrl } from '../support/postgres.js';
import { describeWorkerContract } from './worker-contract.js';

describeWorkerContract('postgres', {
  skip: postgresSkip(),
  makeDriver: async () => isolatedPostgres(postgresTestUrl() as string),
});
