/** `taskq run`: migrate, then serve the API and run the workers, until SIGTERM or SIGINT. */
import type { Command } from 'commander';
import { SERVICE_SETTINGS, addSettings, configFrom } from '../options.js';

export function registerRun(program: Command): void {
  const command = program
    .command('run', { isDefault: true })
    .description('apply pending migrations, then serve the HTTP API and run the workers in this process');
  addSettings(command, SERVICE_SETTINGS).action(async (options: Record<string, unknown>) => {
    const config = configFrom(options);
    // Opened before the server modules load (about half a second on a busy machine), so an
    // unusable SQLite path is reported at once; the service owns and closes it from here on.
    // Loaded here, not at the top, so `--help` and bad settings answer without loading the server.
    const { createLogger } = await import('../../logger.js');
    const logger = createLogger(config.logLevel);
    // Before the server modules load, so whatever instrumentation the SDK brings sees them load.
    const { startTracing } = await import('../tracing.js');
    const tracing = await startTracing(process.env, logger);
    const { openDriver } = await import('../../drivers/open-driver.js');
    // With the logger: lost connections (PostgreSQL) and failing checkpoints (SQLite) are logged.
    const driver = await openDriver(config, logger.child({ component: 'db' }));
    // Migrated here, for the same reason: a PostgreSQL URL is first used by the migration.
    try {
      const { applied, current } = await driver.migrate();
      if (applied.length > 0) logger.info({ applied, version: current }, 'applied migrations');
    } catch (err) {
      await driver.close().catch(() => undefined); // the error below is the one to report
      throw err;
    }
    const { TaskqNode } = await import('../../service.js');
    // A handler's stray promise rejects nothing the service holds: log it and go on.
    process.on('unhandledRejection', (reason) =>
      logger.error({ err: reason }, 'unhandled rejection (ignored)'),
    );
    // A synchronous throw that nothing caught may have left any state half-changed: exit so a
    // supervisor starts a clean process. Nothing answered 202 is lost (it is committed), and
    // the tasks this process held run again elsewhere once their leases expire.
    process.on('uncaughtException', (err) => {
      logger.fatal({ err }, 'uncaught exception: exiting (a supervisor should restart taskq)');
      process.exit(70); // EX_SOFTWARE
    });

    const service = await TaskqNode.create({ config, logger, driver, migrated: true });
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'signal received');
      service
        .stop()
        .then(() => tracing?.shutdown()) // exports the spans still buffered
        .then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    await service.start();
  });
}
