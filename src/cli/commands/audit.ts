/**
 * `taskq audit`: the audit log of a running service (GET /audit, an admin token's), newest first:
 * when, which token, what, on what, the filter and count of a bulk operation, and the status.
 */
import type { Command } from 'commander';
import type { AuditEntry } from '../../client/index.js';
import { ConfigError } from '../../core/errors.js';
import { clientFrom, clip, formatTable, withClientOptions } from './producer.js';

/** A bulk operation's filter and count (`status=failed matched 12`, `dry run`); '' for others. */
function detailOf(entry: AuditEntry): string {
  const d = entry.detail;
  if (!d) return '';
  const filter =
    d.filter && typeof d.filter === 'object'
      ? Object.entries(d.filter)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ')
      : '';
  const parts = [
    filter,
    typeof d.matched === 'number' ? `matched ${d.matched}` : '',
    d.dry_run ? 'dry run' : '',
  ];
  return parts.filter((p) => p !== '').join(', ');
}

export function formatAudit(entries: readonly AuditEntry[], nextCursor: string | null): string {
  if (entries.length === 0) return 'no audit entries';
  const rows = entries.map((e) => [
    e.at,
    e.token ?? '-',
    e.action,
    e.target ?? '-',
    String(e.status),
    clip(detailOf(e), 80),
  ]);
  const lines = [formatTable([['WHEN', 'TOKEN', 'ACTION', 'TARGET', 'STATUS', 'DETAIL'], ...rows])];
  if (nextCursor) lines.push('', `more: taskq audit --cursor ${nextCursor}`);
  return lines.join('\n');
}

function limitOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 1000)
    throw new ConfigError(`--limit: expected a whole number in 1..1000, got "${text}"`);
  return Number(text);
}

export function registerAuditCommand(program: Command): void {
  withClientOptions(
    program
      .command('audit')
      .description(
        'show the audit log of a running service, newest first: who (token), what, target, filter and count, status, when (needs an admin token)',
      )
      .option('--token-name <name>', "only the entries of this token's name")
      .option('--action <action>', 'only this action, e.g. tasks.retry, actions.pause, bulk.delete')
      .option('--limit <n>', 'entries per page (1..1000)', '50')
      .option('--cursor <cursor>', 'the page after the one that printed it')
      .option('--json', 'print the JSON of GET /audit'),
  ).action(async (options: Record<string, unknown>) => {
    const page = await clientFrom(options).auditPage({
      token: options.tokenName as string | undefined,
      action: options.action as string | undefined,
      limit: limitOf(options.limit),
      cursor: options.cursor as string | undefined,
    });
    console.log(options.json ? JSON.stringify(page, null, 2) : formatAudit(page.entries, page.next_cursor));
  });
}
