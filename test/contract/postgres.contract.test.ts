import { isolatedPostgres, postgresSkip, postgresTestUrl } from '../support/postgres.js';
import { describeDriverContract } from './driver-contract.js';

describeDriverContract('postgres', {
  skip: postgresSkip(),
  makeDriver: async () => isolatedPostgres(postgresTestUrl() as string),
});
