/**
 * The `taskq` command. Errors a user can fix (bad settings, unusable database) end as one line
 * on stderr: exit 2 for a bad setting, 1 for anything else. The stack trace too only when the
 * environment sets TASKQ_DEBUG (any command, even one that fails before its settings are read).
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, QueueError } from '../core/errors.js';
import { PACKAGE_VERSION } from '../core/version.js';
import { registerAuditCommand } from './commands/audit.js';
import { registerConsoleCommands } from './commands/console.js';
import { registerMigrate } from './commands/migrate.js';
import { registerProducerCommands } from './commands/producer.js';
import { registerBulkCommands } from './commands/bulk.js';
import { registerInspectCommands } from './commands/inspect.js';
import { registerPrune } from './commands/prune.js';
import { registerRun } from './commands/run.js';

export function buildProgram(): Command {
  const program = new Command('taskq')
    .description('A durable task queue: HTTP API, worker pool, embedded SQLite or PostgreSQL')
    .version(PACKAGE_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', '\nA failing command prints one line; set TASKQ_DEBUG=1 for its stack trace too.')
    .exitOverride();
  registerRun(program);
  registerMigrate(program);
  registerProducerCommands(program);
  registerBulkCommands(program);
  registerInspectCommands(program);
  registerConsoleCommands(program);
  registerAuditCommand(program);
  registerPrune(program);
  return program;
}

function fail(err: unknown): never {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  console.error(`taskq: ${message}`);
  if (process.env.TASKQ_DEBUG) console.error(err);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    fail(
      err instanceof QueueError || err instanceof ConfigError || err instanceof Error
        ? err
        : new Error(String(err)),
    );
  }
}

await main();
