/**
 * The operator's console from a shell (docs/operations.md), through the typed client:
 * `taskq pause ACTION`, `taskq resume ACTION`, `taskq actions`, `taskq schedules` and
 * `taskq schedule pause|resume|run NAME`.
 */
import type { Command } from 'commander';
import type { ActionItem, ScheduleItem } from '../../client/index.js';
import { ConfigError } from '../../core/errors.js';
import { clientFrom, formatTable, withClientOptions } from './producer.js';

const dash = (v: number | string | null | undefined) => (v === null || v === undefined ? '-' : String(v));
const percent = (rate: number | null) => (rate === null ? '-' : `${(rate * 100).toFixed(1)}%`);
const seconds = (ms: number | null) => (ms === null ? '-' : `${Math.round(ms / 1000)}s`);

/** The flow-control settings in one cell: `20/s burst 5, 2/key, 4/node`. */
function limitsOf(a: ActionItem): string {
  const parts = [
    a.rate_limit && `${a.rate_limit.per_second}/s burst ${a.rate_limit.burst}`,
    a.concurrency_per_key !== null && `${a.concurrency_per_key}/key`,
    a.concurrency !== null && `${a.concurrency}/node`,
  ].filter((p): p is string => typeof p === 'string');
  return parts.length > 0 ? parts.join(', ') : '-';
}

export function actionsTable(actions: readonly ActionItem[]): string {
  const head = ['ACTION', 'STATE', 'QUEUED', 'RUNNING', 'DONE/MIN 5M', 'DONE 60M', 'FAIL 60M'];
  const rows = actions.map((a) => [
    a.action,
    a.paused ? 'paused' : 'active',
    String(a.counts.queued),
    String(a.counts.running),
    String(a.last_5m.completed_per_minute),
    String(a.last_60m.completed),
    percent(a.last_60m.failure_rate),
    a.run_ms_p50 === null ? '-' : `${a.run_ms_p50}/${dash(a.run_ms_p95)}`,
    seconds(a.oldest_queued_age_ms),
    limitsOf(a),
  ]);
  return formatTable([[...head, 'P50/P95 MS', 'OLDEST', 'LIMITS'], ...rows]);
}

export function schedulesTable(schedules: readonly ScheduleItem[]): string {
  const rows = schedules.map((s) => [
    s.name,
    s.paused ? 'paused' : 'active',
    `${s.cron} (${s.timezone})`,
    s.action,
    s.paused ? `(${s.next_run_at})` : s.next_run_at,
    dash(s.last_run_at),
    dash(s.last_task_id),
  ]);
  return formatTable([['NAME', 'STATE', 'CRON', 'ACTION', 'NEXT RUN', 'LAST RUN', 'LAST TASK'], ...rows]);
}

export function registerConsoleCommands(program: Command): void {
  for (const verb of ['pause', 'resume'] as const) {
    withClientOptions(
      program
        .command(`${verb} <action>`)
        .description(
          verb === 'pause'
            ? 'pause an action on every node: no claims from the answer on, queued tasks wait, running ones finish'
            : 'resume a paused action: workers on every node claim its queued tasks again',
        )
        .option('--json', 'print the JSON answer'),
    ).action(async (action: string, options: Record<string, unknown>) => {
      const client = clientFrom(options);
      const state = verb === 'pause' ? await client.pauseAction(action) : await client.resumeAction(action);
      if (options.json) console.log(JSON.stringify(state, null, 2));
      else
        console.log(
          state.paused ? `${state.action}: paused since ${state.paused_at}` : `${state.action}: active`,
        );
    });
  }

  withClientOptions(
    program
      .command('actions')
      .description(
        'list every action: paused, counts, throughput, failure rate, run time p50/p95, oldest queued, limits',
      )
      .option('--json', 'print the JSON of GET /actions'),
  ).action(async (options: Record<string, unknown>) => {
    const view = await clientFrom(options).actions();
    console.log(options.json ? JSON.stringify(view, null, 2) : actionsTable(view.actions));
  });

  withClientOptions(
    program
      .command('schedules')
      .description('list the recurring tasks: state, cron, next and last run')
      .option('--json', 'print the JSON of GET /schedules'),
  ).action(async (options: Record<string, unknown>) => {
    const { schedules } = await clientFrom(options).schedules();
    if (options.json) console.log(JSON.stringify({ schedules }, null, 2));
    else console.log(schedules.length === 0 ? '(no schedules: see --schedules)' : schedulesTable(schedules));
  });

  withClientOptions(
    program
      .command('schedule <verb> <name>')
      .description('pause, resume or run now one schedule (verb: pause | resume | run)')
      .option('--idempotency-key <key>', 'with run: a repeated key queues the run once')
      .option('--json', 'print the JSON answer'),
  ).action(async (verb: string, name: string, options: Record<string, unknown>) => {
    const client = clientFrom(options);
    if (verb === 'run') {
      const key = options.idempotencyKey as string | undefined;
      const run = await client.runSchedule(name, { idempotencyKey: key });
      if (options.json) console.log(JSON.stringify(run, null, 2));
      else console.log(run.task.id);
      return;
    }
    if (verb !== 'pause' && verb !== 'resume')
      throw new ConfigError(`schedule: "${verb}" is not one of pause, resume, run`);
    const state = verb === 'pause' ? await client.pauseSchedule(name) : await client.resumeSchedule(name);
    if (options.json) console.log(JSON.stringify(state, null, 2));
    else console.log(`${state.name}: ${state.paused ? 'paused' : 'active'}, next run ${state.next_run_at}`);
  });
}
