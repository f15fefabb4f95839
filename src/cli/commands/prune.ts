/** `taskq prune --older-than 1d`: delete finished tasks now, with a progress bar. */
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { parseDuration } from '../../core/config.js';
import { addSettings, configFrom } from '../options.js';

/** One line of progress, redrawn in place on a terminal and printed every 10% otherwise. */
function progressReporter(total: number, stream: NodeJS.WriteStream = process.stderr) {
  let lastTenth = -1;
  return (done: number) => {
    const ratio = total === 0 ? 1 : Math.min(1, done / total);
    const width = 30;
    const filled = Math.round(ratio * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} (${Math.round(ratio * 100)}%)`;
    if (stream.isTTY) stream.write(`\r${line}`);
    else if (Math.floor(ratio * 10) !== lastTenth) {
      lastTenth = Math.floor(ratio * 10);
      stream.write(`${line}\n`);
    }
  };
}

export function registerPrune(program: Command): void {
  const command = program
    .command('prune')
    .description('delete finished tasks (completed, failed, cancelled) that finished before a given age, now')
    .requiredOption('--older-than <duration>', 'e.g. 1d, 12h, 30m')
    .option('--status <status>', 'only this finished status (completed, failed or cancelled)')
    .option('--batch <n>', 'tasks deleted per transaction', '1000');
  addSettings(command, ['db', 'pgPoolSize']).action(async (options: Record<string, unknown>) => {
    const olderThan = parseDuration(String(options.olderThan));
    if (olderThan === null)
      throw new ConfigError(
        `--older-than: expected a duration like 30m, 12h or 7d, got "${String(options.olderThan)}"`,
      );
    const batch = Number(options.batch);
    if (!Number.isInteger(batch) || batch < 1 || batch > 100_000)
      throw new ConfigError('--batch: expected 1..100000');
    const status = options.status as string | undefined;
    if (status !== undefined && !['completed', 'failed', 'cancelled'].includes(status)) {
      throw new ConfigError(`--status: "${status}" is not one of completed, failed, cancelled`);
    }
    const config = configFrom(options);
    const { openDriver } = await import('../../drivers/open-driver.js');
    const { pruneAll } = await import('../../worker/pruner.js');
    const driver = await openDriver(config);
    try {
      await driver.migrate();
      const cutoff = Date.now() - olderThan;
      const finishedBefore = {
        completed: !status || status === 'completed' ? cutoff : 0,
        failed: !status || status === 'failed' ? cutoff : 0,
        cancelled: !status || status === 'cancelled' ? cutoff : 0,
      };
      const total = await driver.countPrunableTasks({ finishedBefore });
      const report = progressReporter(total);
      report(0);
      const deleted = await pruneAll(driver, finishedBefore, { batch, onBatch: report });
      if (process.stderr.isTTY) process.stderr.write('\n');
      console.log(`pruned ${deleted} task(s) finished more than ${String(options.olderThan)} ago`);
    } finally {
      await driver.close();
    }
  });
}
