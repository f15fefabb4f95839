/** Recurring tasks: one task per tick even with several processes running the scheduler. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './support/process.js';
import { startTestApp, type TestApp } from './support/service.js';
import { cleanupAfterEach, freshDir as freshDirFor } from './support/cleanup.js';

const services: TestApp[] = [];
const defer = cleanupAfterEach();
afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});
const freshDir = () => freshDirFor(defer);

function schedulesFile(content: unknown): string {
  const file = join(freshDir(), 'schedules.json');
  writeFileSync(file, JSON.stringify(content));
  return file;
}

describe('schedules', () => {
  it('queues each tick exactly once across two nodes, and lists schedules with their next run', async () => {
    const file = schedulesFile([
      { name: 'heartbeat', cron: '* * * * * *', action: 'uppercase', data: { text: 'tick' } },
      { name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', action: 'sum' },
    ]);
    const db = join(freshDir(), 'tasks.db');
    const a = await startTestApp({ db, schedules: file });
    services.push(a);
    const b = await startTestApp({ db, schedules: file });
    services.push(b);
    // Both schedulers are driven by hand through 3.5 s from now, a check a second as their timers
    // would make (each check queues the ticks since that node's previous one).
    const [sa, sb] = [a.service.scheduler!, b.service.scheduler!];
    await Promise.all([sa.stop(), sb.stop()]);
    const start = Date.now();
    for (const at of [1000, 2000, 3000, 3500])
      await Promise.all([sa.check(start + at), sb.check(start + at)]);
    const tasks = await a.service.driver.listTasks({ action: 'uppercase', limit: 100 });
    const keys = tasks.map((t) => t.uniqueKey);
    expect(tasks.length).toBeGreaterThanOrEqual(3);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.every((k) => /^schedule:heartbeat:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/.test(k ?? ''))).toBe(
      true,
    );

    const res = await a.http('/schedules');
    expect(res.status).toBe(200);
    const nightly = res.body.schedules.find((s: { name: string }) => s.name === 'nightly');
    expect(nightly).toMatchObject({ cron: '0 3 * * *', timezone: 'Europe/Berlin', action: 'sum' });
    // 03:00 in Berlin is 01:00 or 02:00 UTC, depending on daylight saving time.
    expect(nightly.next_run_at).toMatch(/T0[12]:00:00\.000Z$/);
  });

  it.each([
    [[{ name: 'x', cron: 'every minute', action: 'sum' }], /schedule "x": bad cron "every minute"/],
    [
      [{ name: 'x', cron: '* * * * *', timezone: 'Mars/Olympus', action: 'sum' }],
      /bad cron .* or timezone "Mars\/Olympus"/,
    ],
    [[{ name: 'x', cron: '* * * * *' }], /schedule "x": action must be a non-empty string/],
    [{ not: 'a list' }, /must hold a JSON array/],
  ])('refuses a bad schedules file with one line and exit 2 (%#)', (content, message) => {
    const file = schedulesFile(content);
    const { code, stderr } = runCli(['run', '--schedules', file, '--db', join(freshDir(), 't.db')]);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });
});
