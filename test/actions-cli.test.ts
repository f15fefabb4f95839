/**
 * The console's CLI commands against a real service on both drivers: `taskq pause|resume`,
 * `taskq actions` (table and --json), `taskq schedules` and `taskq schedule pause|resume|run`,
 * plus `--help` on each. The CLI runs as a child process (bin/taskq.js, from dist/: build first).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BOTH_DRIVERS } from './support/drivers.js';
import { cleanupAfterEach, freshDir } from './support/cleanup.js';
import { dropSchema, postgresTestUrl, randomSchema, withSchema } from './support/postgres.js';
import { runCli, spawnCli } from './support/process.js';
import { finished, startTestService, type TestService } from './support/service.js';

const defer = cleanupAfterEach();
let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.reverse()) await stop();
  stops = [];
});

/** Runs `taskq ...` without blocking this process (the service under test answers it). */
async function taskq(...args: string[]): Promise<{ code: number | null; out: string }> {
  const run = spawnCli(args);
  const { code } = await run.exited;
  return { code, out: run.output() };
}

async function service(name: 'sqlite' | 'postgres'): Promise<TestService> {
  const file = join(freshDir(defer), 'schedules.json');
  writeFileSync(
    file,
    JSON.stringify([{ name: 'report', cron: '0 3 * * *', action: 'uppercase', data: { text: 'r' } }]),
  );
  let db = join(freshDir(defer), 'tasks.db');
  if (name === 'postgres') {
    const url = postgresTestUrl() as string;
    const schema = randomSchema();
    stops.push(() => dropSchema(url, schema));
    db = withSchema(url, schema);
  }
  const svc = await startTestService({ db, schedules: file, pollMs: 50 });
  stops.push(() => svc.stop());
  return svc;
}

describe('help', () => {
  it.each([['pause'], ['resume'], ['actions'], ['schedules'], ['schedule']])('taskq %s --help', (command) => {
    const { code, stdout } = runCli([command, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: taskq ${command}`);
    expect(stdout).toContain('--url');
  });
});

describe.each(BOTH_DRIVERS)('console commands on %s', (name, _open, skip) => {
  it.skipIf(skip)('pause, actions, resume, schedules and schedule run', async () => {
    const svc = await service(name);
    const url = ['--url', svc.url];

    const paused = await taskq('pause', 'uppercase', ...url);
    expect(paused.code, paused.out).toBe(0);
    expect(paused.out).toMatch(/^uppercase: paused since \d{4}-/);
    const res = await svc.http('/tasks', {
      method: 'POST',
      json: { action: 'uppercase', data: { text: 'x' } },
    });
    const id = res.body.id as string;

    const table = await taskq('actions', ...url);
    expect(table.code, table.out).toBe(0);
    expect(table.out.split('\n')[0]).toMatch(/^ACTION\s+STATE\s+QUEUED\s+RUNNING/);
    expect(table.out).toMatch(/\nuppercase\s+paused\s+1\s+0\s/);
    const json = await taskq('actions', '--json', ...url);
    const upper = JSON.parse(json.out).actions.find((a: { action: string }) => a.action === 'uppercase');
    expect(upper).toMatchObject({ paused: true, counts: { queued: 1 }, schedules: ['report'] });

    const resumed = await taskq('resume', 'uppercase', ...url);
    expect(resumed.out.trim()).toBe('uppercase: active');
    expect((await finished(svc.http, id)).status).toBe('completed');

    const list = await taskq('schedules', ...url);
    expect(list.out).toMatch(/\nreport\s+active\s+0 3 \* \* \* \(UTC\)\s+uppercase\s/);
    const pausedSchedule = await taskq('schedule', 'pause', 'report', ...url);
    expect(pausedSchedule.out).toMatch(/^report: paused, next run /);
    const ran = await taskq('schedule', 'run', 'report', '--idempotency-key', 'k1', ...url);
    expect(ran.code, ran.out).toBe(0);
    const again = await taskq('schedule', 'run', 'report', '--idempotency-key', 'k1', ...url);
    expect(again.out).toBe(ran.out);
    expect((await finished(svc.http, ran.out.trim())).status).toBe('completed');
    const after = JSON.parse((await taskq('schedules', '--json', ...url)).out).schedules[0];
    expect(after).toMatchObject({ name: 'report', paused: true, last_task_id: ran.out.trim() });

    const unknown = await taskq('schedule', 'run', 'nope', ...url);
    expect(unknown.code).toBe(1);
    expect(unknown.out).toMatch(/taskq: schedule "nope" not found/);
    const badVerb = await taskq('schedule', 'stop', 'report', ...url);
    expect(badVerb.code).toBe(2);
    const badName = await taskq('pause', 'no spaces', ...url);
    expect(badName.code).toBe(1);
    expect(badName.out).toMatch(/^taskq: /);
  });
});
