/** `taskq run`: migrate, then serve the API and run the workers, until SIGTERM or SIGINT. */
import type { Command } from 'commander';
import { addSettings, configFrom } from '../options.js';

export function registerRun(program: Command): void {
  const command = program
    .command('run', { isDefault: true })
    .description('apply pending migrations, then serve the HTTP API and run the workers in this process');
  addSettings(command, [
    'db',
    'port',
    'host',
    'role',
    'concurrency',
    'prefetch',
    'handlers',
    'strictActions',
    'logLevel',
    'bodyLimit',
    'maxAttempts',
    'taskTimeoutMs',
    'leaseMs',
    'pollMs',
    'backoffMs',
    'backoffMaxMs',
    'shutdownGraceMs',
    'sync',
    'pgPoolSize',
    'apiToken',
    'idempotencyWindowMs',
    'retentionCompletedMs',
    'retentionFailedMs',
    'schedules',
  ]).action(async (options: Record<string, unknown>) => {
    const config = configFrom(options);
    // Opened before the server modules load (about half a second on a busy machine), so an
    // unusable SQLite path is reported at once; the service owns and closes it from here on.
    const { openDriver } = await import('../../drivers/open-driver.js');
    const driver = await openDriver(config);
    // Loaded here, not at the top, so `--help` and bad settings answer without loading the server.
    const { createLogger } = await import('../../logger.js');
    const { Service } = await import('../../service.js');
    const logger = createLogger(config.logLevel);
    // A handler's stray promise or timer callback must not take the service down.
    process.on('unhandledRejection', (reason) =>
      logger.error({ err: reason }, 'unhandled rejection (ignored)'),
    );
    process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception (ignored)'));

    const service = await Service.create({ config, logger, driver });
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'signal received');
      service.stop().then(
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
