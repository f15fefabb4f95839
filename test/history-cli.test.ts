/**
 * `taskq task ID` and `taskq nodes` (issue 11 parts 1 and 4) against a real service on each
 * driver, run as the user runs them (the built CLI in another process); and the typed client.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { TaskqClient } from '../src/client/index.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { BOTH_SERVICE_DBS } from './support/drivers.js';
import { runCli, TASKQ_BIN } from './support/process.js';
import { finished, startTestService, type TestService } from './support/service.js';

/** Runs the CLI without blocking the event loop (the service under test lives in this process). */
function cli(url: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TASKQ_BIN, ...args, '--url', url]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const flaky: HandlerDefinition = {
  action: 'flaky',
  handle: (_task, ctx) => {
    if (ctx.attempt === 1) throw new Error('flaky on its first run');
    return { ok: true };
  },
};

describe('--help', () => {
  it.each([['task'], ['nodes']])('taskq %s --help says what it does and its options', (command) => {
    const { code, stdout } = runCli([command, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('--json');
    expect(stdout).toContain('--url');
  });
});

describe.each(BOTH_SERVICE_DBS)('taskq task and taskq nodes on %s', (_name, database, skip) => {
  let services: TestService[] = [];
  let cleanup: () => Promise<void> = async () => {};
  afterEach(async () => {
    for (const s of services.reverse()) await s.stop();
    services = [];
    await cleanup();
  });

  async function start(overrides: Record<string, string | number> = {}) {
    const { db, cleanup: drop } = database();
    cleanup = drop;
    const svc = await startTestService({ backoffMs: 0, ...(db === undefined ? {} : { db }), ...overrides }, [
      flaky,
    ]);
    services.push(svc);
    return svc;
  }

  it.skipIf(skip)('taskq task prints the task and a row per attempt; --json has the stacks', async () => {
    const svc = await start();
    const { id } = await new TaskqClient({ baseUrl: svc.url }).enqueue('flaky');
    await finished(svc.http, id);
    const table = await cli(svc.url, ['task', id]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^id:\\s+${id}\\n`));
    expect(table.stdout).toMatch(/\nstatus:\s+completed\n/);
    expect(table.stdout).toMatch(/\nattempts:\s+2 of 3\n/);
    expect(table.stdout).toMatch(/\n#\s+OUTCOME\s+NODE\s+STARTED\s+TOOK\s+ERROR\n/);
    const node = svc.service.node.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(table.stdout).toMatch(
      new RegExp(`\\n1\\s+error\\s+${node}\\s+\\S+\\s+\\d+ ms\\s+flaky on its first run\\n`),
    );
    expect(table.stdout).toMatch(new RegExp(`\\n2\\s+completed\\s+${node}\\s+`));

    const json = await cli(svc.url, ['task', id, '--json']);
    expect(json.code).toBe(0);
    const task = JSON.parse(json.stdout);
    expect(task.attempt_history).toHaveLength(2);
    expect(task.attempt_history[0].stack).toMatch(/^Error: flaky on its first run\n/);

    const missing = await cli(svc.url, ['task', '00000000-0000-4000-8000-000000000000']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not found/);
  });

  it.skipIf(skip)('taskq nodes lists the nodes, and warns of a backlog with no live worker', async () => {
    const api = await start({ role: 'api' });
    await api.service.node.beat();
    await new TaskqClient({ baseUrl: api.url }).enqueue('flaky', {}, { delayMs: 3_600_000 });
    const warned = await cli(api.url, ['nodes']);
    expect(warned.code).toBe(0);
    expect(warned.stdout).toMatch(/^NODE\s+ROLE\s+STATUS\s+VERSION\s+RUNNING\s+LAST SEEN\s+TASKS\n/);
    expect(warned.stdout).toContain(`${api.service.node.id}  api   live`);
    expect(warned.stdout).toMatch(/\n1 live of 1\n/);
    expect(warned.stdout).toMatch(
      /\nwarning: 1 task is queued and no live worker node is running: they wait until one starts\n/,
    );
    const json = JSON.parse((await cli(api.url, ['nodes', '--json'])).stdout);
    expect(json).toMatchObject({ live: 1, warning: { code: 'no_live_worker', queued: 1 } });
    expect(json.nodes[0]).toMatchObject({
      id: api.service.node.id,
      role: 'api',
      status: 'live',
      concurrency: 0,
    });
  });
});
