/**
 * `taskq audit` against a real service with scoped tokens on both drivers: the table, --json,
 * the filters and the cursor, the client's audit() over every page, the token from --token or TASKQ_TOKEN, a 403 for a token that is
 * not admin, and --help. The CLI runs as a child process (bin/taskq.js, from dist/: build first).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TaskqClient, TaskqForbiddenError } from '../src/client/index.js';
import { BOTH_SERVICE_DBS } from './support/drivers.js';
import { runCli, spawnCli } from './support/process.js';
import { startTestService } from './support/service.js';

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.reverse()) await stop();
  stops = [];
});

async function taskq(args: string[], env: Record<string, string> = {}) {
  const run = spawnCli(args, env);
  const { code } = await run.exited;
  return { code, out: run.output() };
}

describe('help', () => {
  it('taskq audit --help lists its filters and the client options', () => {
    const { code, stdout } = runCli(['audit', '--help']);
    expect(code).toBe(0);
    for (const flag of ['--token-name', '--action', '--limit', '--cursor', '--json', '--url', '--token'])
      expect(stdout, flag).toContain(flag);
    expect(stdout).toContain('TASKQ_TOKEN');
  });
});

describe.each(BOTH_SERVICE_DBS)('taskq audit on %s', (_name, database, skip) => {
  it.skipIf(skip)('lists who did what, filters, pages, and needs an admin token', async () => {
    const { db, cleanup } = database();
    const svc = await startTestService({
      db,
      tokens: 'alice:operate:alice-secret-1;root:admin:root-secret-1',
    });
    stops.push(async () => {
      await svc.stop();
      await cleanup();
    });
    const url = ['--url', svc.url];
    const paused = await taskq(['pause', 'send-email', ...url, '--token', 'alice-secret-1']);
    expect(paused.code, paused.out).toBe(0);
    const bulk = await taskq(['retry', '--status', 'failed', '--action', 'send-email', '--yes', ...url], {
      TASKQ_TOKEN: 'alice-secret-1',
    });
    expect(bulk.code, bulk.out).toBe(0);
    await taskq(['resume', 'send-email', ...url, '--token', 'root-secret-1']);

    const table = await taskq(['audit', ...url], { TASKQ_TOKEN: 'root-secret-1' });
    expect(table.code, table.out).toBe(0);
    const lines = table.out.trim().split('\n');
    expect(lines[0]).toMatch(/^WHEN\s+TOKEN\s+ACTION\s+TARGET\s+STATUS\s+DETAIL$/);
    expect(lines[1]).toMatch(/^\d{4}-\S+\s+root\s+actions\.resume\s+send-email\s+200\s*$/);
    expect(lines[2]).toMatch(
      /^\d{4}-\S+\s+alice\s+bulk\.retry\s+\S+\s+202\s+action=send-email status=failed, matched 0$/,
    );
    // The CLI counts first (a dry run: a read, not recorded), then submits.
    expect(lines[3]).toMatch(/^\d{4}-\S+\s+alice\s+actions\.pause\s+send-email\s+200\s*$/);

    const mine = await taskq(['audit', '--token-name', 'alice', '--limit', '1', '--json', ...url], {
      TASKQ_TOKEN: 'root-secret-1',
    });
    const page = JSON.parse(mine.out);
    expect(page.entries.map((e: { action: string }) => e.action)).toEqual(['bulk.retry']);
    expect(page.next_cursor).toEqual(expect.any(String));
    const next = await taskq([
      'audit',
      '--token-name',
      'alice',
      '--cursor',
      page.next_cursor,
      '--json',
      '--token',
      'root-secret-1',
      ...url,
    ]);
    const rest = JSON.parse(next.out).entries;
    expect(rest.map((e: { action: string }) => e.action)).toEqual(['actions.pause']);
    const byAction = await taskq(['audit', '--action', 'actions.resume', ...url, '--token', 'root-secret-1']);
    expect(byAction.out.trim().split('\n')).toHaveLength(2);

    // The client's audit() walks every page (here of one entry each).
    const client = new TaskqClient({ baseUrl: svc.url, token: 'root-secret-1' });
    const walked: string[] = [];
    for await (const e of client.audit({ token: 'alice', limit: 1 })) walked.push(e.action);
    expect(walked).toEqual(['bulk.retry', 'actions.pause']);
    const forbidden = new TaskqClient({ baseUrl: svc.url, token: 'alice-secret-1' });
    await expect(forbidden.auditPage()).rejects.toBeInstanceOf(TaskqForbiddenError);

    const refused = await taskq(['audit', ...url, '--token', 'alice-secret-1']);
    expect(refused.code).toBe(1);
    expect(refused.out.trim()).toBe("taskq: token 'alice' lacks scope 'admin'");
    const badLimit = await taskq(['audit', '--limit', '0', ...url]);
    expect(badLimit.code).toBe(2);
  });
});
