/**
 * `taskq retry|cancel|delete` and `taskq tasks` with the filter flags, as a user runs them
 * (the built CLI in a child process) against a real service on each driver.
 */
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import type { NewTask } from '../src/core/task.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import { TaskqNode } from '../src/service.js';
import { progressLine } from '../src/cli/commands/bulk.js';
import { BOTH_DRIVERS } from './support/drivers.js';
import { newTask } from './support/factories.js';
import { runCli, TASKQ_BIN } from './support/process.js';

/** The CLI in a child process, without blocking this process (which serves it). */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TASKQ_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Failed tasks of `action` with `data`, through the driver. */
async function failed(driver: QueueDriver, tasks: Partial<NewTask>[]): Promise<string[]> {
  const now = Date.now();
  const inserted = await driver.insertTasks({ tasks: tasks.map((t) => newTask(t, now)), now });
  const claimed = await driver.claimTasks({ owner: 'seed', limit: tasks.length, now, leaseMs: 60_000 });
  await driver.failTasks({
    failures: claimed.map((t) => ({
      id: t.id,
      seq: t.seq,
      owner: 'seed',
      attempt: t.attempts,
      error: 'boom',
      outcome: 'failed' as const,
    })),
    now,
  });
  return inserted.map((r) => r.task.id);
}

describe('help', () => {
  it.each(['retry', 'cancel', 'delete', 'tasks'])('taskq %s --help lists the filter flags', (command) => {
    const { code, stdout } = runCli([command, '--help']);
    expect(code).toBe(0);
    for (const flag of [
      '--status',
      '--action',
      '--id',
      '--data',
      '--error',
      '--created-after',
      '--finished-before',
    ])
      expect(stdout).toContain(flag);
    if (command !== 'tasks')
      for (const flag of ['--dry-run', '--yes', '--url']) expect(stdout).toContain(flag);
  });

  it('draws the progress bar from an operation', () => {
    const op = { op: 'retry', matched: 10, matched_exact: true, done: 4, skipped: 1, status: 'running' };
    expect(progressLine(op as Parameters<typeof progressLine>[0])).toBe(
      `[${'#'.repeat(15)}${'-'.repeat(15)}]  50%  4 of 10 retried, 1 skipped`,
    );
  });
});

describe.each(BOTH_DRIVERS)('%s', (_name, open, skip) => {
  let service: TaskqNode;
  let driver: QueueDriver;
  let url: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    if (skip) return;
    const isolated = await open();
    driver = isolated.driver;
    const config = resolveConfig(
      { port: 0, host: '127.0.0.1', logLevel: 'silent', role: 'api', db: './unused.db' },
      {},
    );
    service = await TaskqNode.create({ config, logger: pino({ level: 'silent' }), driver });
    url = await service.start();
    cleanup = isolated.cleanup;
  });
  afterAll(async () => {
    if (skip) return;
    await service.stop();
    await cleanup();
  });

  it.skipIf(skip)(
    'taskq retry counts with --dry-run, refuses without --yes, and retries with a progress bar',
    async () => {
      const [a, b, c] = await failed(driver, [
        { action: 'mail', data: { tenant: 'a' } },
        { action: 'mail', data: { tenant: 'b' } },
        { action: 'sms', data: { tenant: 'b' } },
      ]);
      const dry = await cli(['retry', '--url', url, '--status', 'failed', '--action', 'mail', '--dry-run']);
      expect(dry).toMatchObject({ code: 0, stdout: '2 task(s) match\n' });
      const refused = await cli(['retry', '--url', url, '--status', 'failed']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/^taskq: 3 task\(s\) match; pass --yes to retry them/);
      const listed = await cli(['tasks', '--url', url, '--data', 'tenant=b', '--status', 'failed']);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(b);
      expect(listed.stdout).toContain(c);
      expect(listed.stdout).not.toContain(a);

      const run = await cli(['retry', '--url', url, '--status', 'failed', '--data', 'tenant=b', '--yes']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^operation [0-9a-f-]{36}: 2 retried, 0 skipped of 2\n$/);
      // not a terminal: plain lines, the last one full
      expect(run.stderr.trim().split('\n').at(-1)).toBe(
        `[${'#'.repeat(30)}] 100%  2 of 2 retried, 0 skipped`,
      );
      expect((await driver.getTask({ id: b! }))?.status).toBe('queued');
      expect((await driver.getTask({ id: a! }))?.status).toBe('failed');
    },
  );

  it.skipIf(skip)('taskq cancel and delete over a filter; bad flags exit 2', async () => {
    const now = Date.now();
    const inserted = await driver.insertTasks({
      tasks: [
        newTask({ action: 'later', runAt: now + 3_600_000 }, now),
        newTask({ action: 'later', runAt: now + 3_600_000 }, now),
      ],
      now,
    });
    const cancel = await cli(['cancel', '--url', url, '--action', 'later', '--yes', '--json']);
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout)).toMatchObject({
      op: 'cancel',
      status: 'completed',
      done: 2,
      matched: 2,
    });
    const del = await cli(['delete', '--url', url, '--action', 'later', '--status', 'cancelled', '--yes']);
    expect(del.stdout).toMatch(/: 2 deleted, 0 skipped of 2/);
    for (const r of inserted) expect(await driver.getTask({ id: r.task.id })).toBeNull();

    const bad = await cli(['retry', '--url', url, '--status', 'nope', '--yes']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^taskq: --status must be one of/);
    const badData = await cli(['retry', '--url', url, '--data', 'novalue', '--yes']);
    expect(badData.code).toBe(2);
    expect(badData.stderr).toMatch(/--data: expected field=value/);
  });
});
