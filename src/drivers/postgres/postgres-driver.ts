/** Placeholder until the PostgreSQL driver lands (issue 3). */
import { ConfigError } from '../../core/errors.js';

export class PostgresDriver {
  constructor(_options: { connectionString: string; poolSize: number }) {
    throw new ConfigError('--db (TASKQ_DB): PostgreSQL is not supported yet');
  }
}
