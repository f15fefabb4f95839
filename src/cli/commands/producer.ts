/**
 * Commands that talk to a running service over HTTP, through the typed client:
 * `taskq enqueue`, `taskq tasks`, `taskq stats`.
 */
import type { Command } from 'commander';
import { TaskqClient, WAIT_TIMEOUT_MS_DEFAULT, type Task } from '../../client/index.js';
import { ConfigError } from '../../core/errors.js';
import { TASK_STATUSES } from '../../core/task.js';
import { addSettings, configFrom } from '../options.js';
import { addFilterFlags, filterFromFlags } from '../filter-flags.js';

export function clientFrom(options: Record<string, unknown>): TaskqClient {
  const config = configFrom({ url: options.url, token: options.token });
  const token = config.token;
  // A refused connection is the usual mistake here: say where we looked and how to change it.
  const reachable: typeof fetch = async (input, init) => {
    try {
      return await fetch(input, init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(
        `cannot reach ${config.url}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is taskq running? see --url / TASKQ_URL)`,
        { cause: err },
      );
    }
  };
  // The environment as a trace-context carrier (OpenTelemetry's TRACEPARENT / TRACESTATE), so a
  // traced script's enqueues join its trace; these are context, not settings of taskq.
  const traceContext = () => ({ traceparent: process.env.TRACEPARENT, tracestate: process.env.TRACESTATE });
  return new TaskqClient({ baseUrl: config.url, token, fetch: reachable, traceContext });
}

export function withClientOptions(command: Command): Command {
  return addSettings(command, ['url', 'token']);
}

function parseJsonObject(text: string, flag: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${flag}: not valid JSON (${(err as Error).message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(`${flag}: must be a JSON object`);
  return value as Record<string, unknown>;
}

function intOption(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(String(value)))
    throw new ConfigError(`${flag}: expected a whole number, got "${String(value)}"`);
  return Number(value);
}

/** `--depends-on a,b`: the ids, without blanks; absent stays absent. */
function idList(value: unknown, flag: string): string[] | undefined {
  if (value === undefined) return undefined;
  const ids = String(value)
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  if (ids.length === 0) throw new ConfigError(`${flag}: expected task ids separated by commas`);
  return ids;
}

function dependencyPolicy(value: unknown): 'fail' | 'run' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'fail' && value !== 'run')
    throw new ConfigError(`--on-dependency-failure: expected fail or run, got "${String(value)}"`);
  return value;
}

/** A plain text table sized to its content. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, col) => cell.padEnd(widths[col] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function registerProducerCommands(program: Command): void {
  withClientOptions(
    program
      .command('enqueue <action>')
      .description('queue a task on a running service and print its id (with --wait, its result)')
      .option('--data <json>', 'the task data, a JSON object', '{}')
      .option('--wait', 'wait until the task finishes and print its result')
      .option('--timeout-ms <n>', 'with --wait: give up after this long', String(WAIT_TIMEOUT_MS_DEFAULT))
      .option('--priority <n>', 'higher runs first (-100..100)')
      .option('--delay-ms <n>', 'run no sooner than this many ms from now')
      .option('--max-attempts <n>', 'runs before the task fails (1..100)')
      .option('--idempotency-key <key>', 'a repeated key answers the original task')
      .option(
        '--concurrency-key <key>',
        "groups tasks (say a tenant id) for the action's concurrencyPerKey cap",
      )
      .option(
        '--depends-on <ids>',
        'comma-separated task ids that must complete first (the task waits blocked)',
      )
      .option(
        '--on-dependency-failure <policy>',
        'when a dependency fails for good or is cancelled: fail (default) or run',
      )
      .addHelpText(
        'after',
        '\nWith TRACEPARENT (and TRACESTATE) set in the environment (W3C trace context), the task and its\nhandler continue that trace (docs/tracing.md).',
      ),
  ).action(async (action: string, options: Record<string, unknown>) => {
    const client = clientFrom(options);
    const data = parseJsonObject(String(options.data), '--data');
    const { id } = await client.enqueue(action, data, {
      priority: intOption(options.priority, '--priority'),
      delayMs: intOption(options.delayMs, '--delay-ms'),
      maxAttempts: intOption(options.maxAttempts, '--max-attempts'),
      idempotencyKey: options.idempotencyKey as string | undefined,
      concurrencyKey: options.concurrencyKey as string | undefined,
      dependsOn: idList(options.dependsOn, '--depends-on'),
      onDependencyFailure: dependencyPolicy(options.onDependencyFailure),
    });
    if (!options.wait) {
      console.log(id);
      return;
    }
    const task = await client.wait(id, { timeoutMs: intOption(options.timeoutMs, '--timeout-ms') });
    if (task.status === 'completed') console.log(JSON.stringify(task.result));
    else {
      console.error(`taskq: task ${id} ${task.status}: ${task.error ?? ''}`);
      process.exitCode = 1;
    }
  });

  withClientOptions(
    addFilterFlags(
      program.command('tasks').description('list tasks of a running service, newest first, as a table'),
    )
      .option('--limit <n>', 'how many (1..1000)', '20')
      .option('--cursor <cursor>', 'the next page: the cursor the previous one printed')
      .option('--json', 'print JSON instead of a table'),
  ).action(async (options: Record<string, unknown>) => {
    const page = await clientFrom(options).listPage({
      filter: filterFromFlags(options),
      limit: intOption(options.limit, '--limit'),
      cursor: options.cursor as string | undefined,
    });
    if (options.json) {
      console.log(JSON.stringify(page, null, 2));
      return;
    }
    const outcome = (t: Task) => clip(t.error ?? (t.result === null ? '' : JSON.stringify(t.result)), 40);
    const rows = page.tasks.map((t) => [
      t.id,
      clip(t.action, 24),
      t.status,
      String(t.attempts),
      t.created_at,
      outcome(t),
    ]);
    console.log(formatTable([['ID', 'ACTION', 'STATUS', 'ATTEMPTS', 'CREATED', 'RESULT / ERROR'], ...rows]));
    if (page.scans && page.tasks.length < (intOption(options.limit, '--limit') ?? 20))
      console.log('(the filter scans: this page read one bounded window of tasks; the next may hold more)');
    if (page.next_cursor) console.log(`(more: --cursor ${page.next_cursor})`);
  });

  withClientOptions(
    program
      .command('stats')
      .description(
        "show counts by status and action, queue age and last hour's throughput of a running service",
      )
      .option('--json', 'print the JSON of GET /stats'),
  ).action(async (options: Record<string, unknown>) => {
    const stats = await clientFrom(options).stats();
    if (options.json) {
      console.log(JSON.stringify(stats, null, 2));
      return;
    }
    const statuses = TASK_STATUSES.filter((s) => s in stats.counts);
    const rows = [['ACTION', ...statuses.map((s) => s.toUpperCase()), 'TOTAL']];
    for (const a of stats.by_action)
      rows.push([a.action, ...statuses.map((s) => String(a.counts[s])), String(a.total)]);
    rows.push(['(all)', ...statuses.map((s) => String(stats.counts[s])), String(stats.total)]);
    console.log(formatTable(rows));
    const sum = (key: 'completed' | 'failed') => stats.throughput.reduce((n, p) => n + p[key], 0);
    const age =
      stats.oldest_queued_age_ms === null
        ? 'none queued'
        : `${Math.round(stats.oldest_queued_age_ms / 1000)} s`;
    console.log(`\noldest queued: ${age}; last hour: ${sum('completed')} completed, ${sum('failed')} failed`);
  });
}
