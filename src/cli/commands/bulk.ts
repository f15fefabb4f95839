/**
 * `taskq retry|cancel|delete [filter flags] [--dry-run] [--yes]`: a bulk operation over the
 * filter grammar on a running service (POST /tasks/bulk), followed to its end with a progress
 * bar on stderr (redrawn in place on a terminal, a line per tenth otherwise). Without --yes it
 * asks on a terminal, and refuses elsewhere, saying how many tasks match.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { BulkOp, Operation, TaskqClient } from '../../client/index.js';
import { ConfigError } from '../../core/errors.js';
import { addFilterFlags, filterFromFlags } from '../filter-flags.js';
import { clientFrom, withClientOptions } from './producer.js';

const WHAT: Record<BulkOp, { verb: string; done: string; takes: string }> = {
  retry: { verb: 'retry', done: 'retried', takes: 'failed and cancelled tasks go back to the queue' },
  cancel: {
    verb: 'cancel',
    done: 'cancelled',
    takes: 'queued tasks are cancelled, running ones asked to stop',
  },
  delete: { verb: 'delete', done: 'deleted', takes: 'every matching task that is not running is deleted' },
};

const BAR_WIDTH = 30;

/** One line of progress: `[#####-----]  50%  500 of 1000 retried, 3 skipped`. */
export function progressLine(op: Operation): string {
  const total = Math.max(op.matched, op.done + op.skipped, 1);
  const share = Math.min(1, (op.done + op.skipped) / total);
  const filled = Math.round(share * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  const of = op.matched_exact || op.status !== 'running' ? `${op.matched}` : `at least ${op.matched}`;
  const what = WHAT[op.op as BulkOp]?.done ?? op.op;
  return `${bar} ${String(Math.round(share * 100)).padStart(3)}%  ${op.done} of ${of} ${what}, ${op.skipped} skipped`;
}

/** Draws progress on stderr: in place on a terminal, else a line each tenth of the way. */
class Progress {
  private lastTenth = -1;
  constructor(private readonly tty: boolean) {}

  show(op: Operation): void {
    const line = progressLine(op);
    if (this.tty) {
      process.stderr.write(`\r${line}\u001b[K`);
      return;
    }
    const tenth = Math.floor(((op.done + op.skipped) / Math.max(op.matched, 1)) * 10);
    if (tenth > this.lastTenth || op.status !== 'running') {
      this.lastTenth = tenth;
      process.stderr.write(`${line}\n`);
    }
  }

  end(): void {
    if (this.tty) process.stderr.write('\n');
  }
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function follow(client: TaskqClient, id: string, progress: Progress): Promise<Operation> {
  let last: Operation | undefined;
  for await (const op of client.followOperation(id)) {
    progress.show(op);
    last = op;
  }
  // The stream ends when the operation does; read it once more in case it ended early.
  last = last?.status === 'running' || !last ? await client.operation(id) : last;
  progress.show(last);
  progress.end();
  return last;
}

function registerOne(program: Command, op: BulkOp): void {
  const what = WHAT[op];
  const command = withClientOptions(
    addFilterFlags(
      program
        .command(op)
        .description(
          `${what.verb} every task the filter matches, on a running service, in the background (${what.takes}); shows progress until it is done`,
        ),
    )
      .option('--dry-run', 'only count the matching tasks')
      .option('--yes', 'do not ask for confirmation')
      .option('--idempotency-key <key>', 'a repeated key answers the first operation')
      .option('--json', 'print the finished operation as JSON')
      .addHelpText(
        'after',
        `\nThe filter is the grammar of GET /tasks (docs/api.md, "Filters"); with no filter flag every task matches.\nExample: taskq ${op} --status failed --action send-email --data tenant=7 --yes`,
      ),
  );
  command.action(async (options: Record<string, unknown>) => {
    const client = clientFrom(options);
    const filter = filterFromFlags(options);
    const counted = await client.bulk(op, filter, { dryRun: true });
    const count = `${counted.matched_exact ? '' : 'at least '}${counted.matched} task(s) match`;
    if (options.dryRun) {
      if (options.json) console.log(JSON.stringify(counted, null, 2));
      else console.log(`${count}${counted.scans ? ' (counted within a bounded scan)' : ''}`);
      return;
    }
    if (!options.yes) {
      if (!process.stdin.isTTY)
        throw new ConfigError(`${count}; pass --yes to ${what.verb} them (no terminal to ask on)`);
      if (!(await confirm(`${count}. ${what.verb} them? [y/N] `))) {
        console.error('taskq: nothing done');
        process.exitCode = 1;
        return;
      }
    }
    const answer = await client.bulk(op, filter, {
      idempotencyKey: options.idempotencyKey as string | undefined,
    });
    const id = answer.operation_id as string;
    const final = await follow(client, id, new Progress(!!process.stderr.isTTY));
    if (options.json) console.log(JSON.stringify(final, null, 2));
    else
      console.log(
        `operation ${id}: ${final.done} ${what.done}, ${final.skipped} skipped of ${final.matched}`,
      );
    if (final.errors > 0)
      console.error(`taskq: ${final.errors} step(s) failed on the way: ${final.last_error ?? ''}`);
  });
}

export function registerBulkCommands(program: Command): void {
  for (const op of ['retry', 'cancel', 'delete'] as const) registerOne(program, op);
}
