/** `taskq migrate`: apply pending migrations, say what was done, exit. */
import type { Command } from 'commander';
import { addSettings, configFrom } from '../options.js';

export function registerMigrate(program: Command): void {
  const command = program
    .command('migrate')
    .description('apply pending database migrations and exit (0 when up to date, non-zero on failure)');
  addSettings(command, ['db', 'sync', 'pgPoolSize']).action(async (options: Record<string, unknown>) => {
    const config = configFrom(options);
    const { openDriver } = await import('../../drivers/open-driver.js');
    const driver = await openDriver(config);
    try {
      const { applied, current } = await driver.migrate({
        onApplied: (name) => console.log(`applied ${name}`),
      });
      console.log(
        applied.length === 0
          ? `${driver.description}: up to date at version ${current}`
          : `${driver.description}: applied ${applied.length} migration(s), now at version ${current}`,
      );
    } finally {
      await driver.close();
    }
  });
}
