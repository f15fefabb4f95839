/**
 * The dashboard's Actions and Schedules pages in a real headless Chromium against a real service
 * (docs/dashboard.md): the figures of GET /actions, rate limit and per-key cap per action, Pause
 * and Resume behind a confirmation (Cancel changes nothing), a paused action's task waiting until
 * resumed, and a schedule's Run now, Pause and Resume. Screenshots, light and dark, in
 * docs/screenshots/actions-*.png with UPDATE_SCREENSHOTS=1 (test-results/ otherwise). Skipped,
 * with one line, when /usr/bin/chromium is missing, except under CI=true.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { finished, startTestService, statusOf, type TestService, withToken } from './support/service.js';
import { tempDir } from './support/temp.js';
import { CHROMIUM, SHOTS, chromiumAvailable, chromiumRequired, launchChromium } from './support/browser.js';

const TOKEN = 'dashboard-actions-token';
const available = chromiumAvailable;
const required = chromiumRequired;
if (!available && !required) console.log(`dashboard actions browser tests skipped: ${CHROMIUM} not found`);

/** An action with flow-control settings, so the page shows them. */
const sendEmail: HandlerDefinition = {
  action: 'send-email',
  rateLimit: { perSecond: 5, burst: 2 },
  concurrencyPerKey: 2,
  handle: async () => ({ sent: true }),
};

describe.skipIf(!available && !required)('dashboard Actions and Schedules in Chromium', () => {
  let service: TestService;
  let browser: Browser;
  let page: Page;
  let dir: { dir: string; cleanup: () => void };
  const { api, post } = withToken(() => service, TOKEN);
  const actionOf = async (action: string) =>
    ((await api('/actions')).body.actions as { action: string; paused: boolean }[]).find(
      (a) => a.action === action,
    );
  const cell = (row: string, column: number) => page.textContent(`${row} td:nth-child(${column})`);

  beforeAll(async () => {
    dir = tempDir();
    const schedules = join(dir.dir, 'schedules.json');
    writeFileSync(
      schedules,
      JSON.stringify([
        {
          name: 'daily-report',
          cron: '0 6 * * *',
          timezone: 'Europe/Berlin',
          action: 'uppercase',
          data: { text: 'report' },
        },
        { name: 'digest', cron: '*/15 * * * *', action: 'send-email', data: { to: 'team' } },
      ]),
    );
    service = await startTestService({ apiToken: TOKEN, schedules, pollMs: 50 }, [sendEmail]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // Sign in once; the token stays in this tab.
    await page.goto(`${service.url}/dashboard`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#login-token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.locator('#live[data-state="on"]').waitFor({ timeout: 10_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    dir?.cleanup();
  });

  it('lists every action with its figures and limits; Pause and Resume, confirmed, hold and free its tasks', async () => {
    for (let i = 0; i < 6; i++)
      await finished(api, await post({ action: 'uppercase', data: { text: `t${i}` } }));
    await finished(api, await post({ action: 'sum', data: { numbers: [1, 'x'] }, max_attempts: 1 }));
    await finished(api, await post({ action: 'sum', data: { numbers: [1, 2] } }));
    await finished(api, await post({ action: 'send-email', data: { to: 'a' } }));

    await page.click('#tabs a[data-page="actions"]');
    expect(new URL(page.url()).searchParams.get('view')).toBe('actions');
    const upper = '#action-rows tr[data-action="uppercase"]';
    await page.locator(upper).waitFor();
    expect(await cell(upper, 2)).toBe('active');
    expect(await cell(upper, 5)).toBe('6'); // completed
    expect(await cell(upper, 8)).toBe('0 %'); // failed in the last hour
    expect(await cell('#action-rows tr[data-action="sum"]', 8)).toBe('50 %');
    const email = '#action-rows tr[data-action="send-email"]';
    expect(await cell(email, 11)).toBe('5/s, burst 2');
    expect(await cell(email, 12)).toBe('2');
    expect(await cell(upper, 11)).toBe('–');

    // Cancel in the confirmation changes nothing.
    await page.click(`${email} [data-toggle="send-email"]`);
    await page.locator('#confirm').waitFor({ state: 'visible' });
    expect(await page.textContent('#confirm h2')).toBe('Pause send-email?');
    await page.click('#confirm-cancel');
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    expect((await actionOf('send-email'))?.paused).toBe(false);

    await page.click(`${email} [data-toggle="send-email"]`);
    await page.click('#confirm-ok');
    await expect.poll(() => cell(email, 2)).toBe('paused');
    expect((await actionOf('send-email'))?.paused).toBe(true);
    expect(await page.textContent('#actions-note')).toBe('send-email paused.');

    // Its new task waits while another action's runs.
    const held = await post({ action: 'send-email', data: { to: 'b' } });
    await finished(api, await post({ action: 'uppercase', data: { text: 'meanwhile' } }));
    expect(await statusOf(api, held)).toBe('queued');
    await expect.poll(() => cell(email, 3), { timeout: 10_000 }).toBe('1'); // queued, re-read live
    await expect.poll(() => cell(email, 10)).not.toBe('–'); // oldest queued age

    mkdirSync(SHOTS, { recursive: true });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: `${SHOTS}/actions-actions.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SHOTS}/actions-actions-dark.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    await page.click(`${email} [data-toggle="send-email"]`);
    expect(await page.textContent('#confirm h2')).toBe('Resume send-email?');
    await page.click('#confirm-ok');
    expect((await finished(api, held)).status).toBe('completed');
    await expect.poll(() => cell(email, 2)).toBe('active');

    // An action's name opens its tasks.
    await page.click(`${upper} td:first-child button`);
    await expect.poll(() => new URL(page.url()).searchParams.get('view')).toBe(null);
    expect(new URL(page.url()).searchParams.get('action')).toBe('uppercase');
    await expect.poll(async () => (await page.locator('#rows tr').count()) > 0).toBe(true);
  });

  it('shows schedules with next and last run; Run now, Pause and Resume, confirmed', async () => {
    await page.goto(`${service.url}/dashboard?view=schedules`);
    const report = '#schedule-rows tr[data-schedule="daily-report"]';
    await page.locator(report).waitFor();
    expect(await cell(report, 3)).toBe('0 6 * * * Europe/Berlin');
    expect(await cell(report, 5)).toMatch(/^in /);
    expect(await cell(report, 6)).toBe('never');

    await page.click(`${report} [data-run="daily-report"]`);
    expect(await page.textContent('#confirm h2')).toBe('Run daily-report now?');
    await page.click('#confirm-ok');
    await expect.poll(() => page.textContent('#schedules-note')).toMatch(/^Queued task [0-9a-f]{8}\.$/);
    const state = async () =>
      (
        (await api('/schedules')).body.schedules as {
          name: string;
          paused: boolean;
          last_task_id: string | null;
        }[]
      ).find((s) => s.name === 'daily-report')!;
    const ran = (await state()).last_task_id!;
    expect((await finished(api, ran)).result).toEqual({ output: 'REPORT' });
    await expect.poll(() => cell(report, 6)).not.toBe('never');

    await page.click(`${report} [data-toggle="daily-report"]`);
    await page.click('#confirm-ok');
    await expect.poll(() => cell(report, 2)).toBe('paused');
    expect((await state()).paused).toBe(true);
    expect(await cell(report, 5)).toBe('skipped while paused');

    await page.screenshot({ path: `${SHOTS}/actions-schedules.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SHOTS}/actions-schedules-dark.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    // The last run opens its task in the panel.
    await page.click(`${report} td:nth-child(6) button`);
    await expect.poll(() => page.textContent('#detail-id')).toBe(ran);

    await page.click('#detail-close');
    await page.click(`${report} [data-toggle="daily-report"]`);
    expect(await page.textContent('#confirm h2')).toBe('Resume daily-report?');
    await page.click('#confirm-ok');
    await expect.poll(() => cell(report, 2)).toBe('active');
    expect((await state()).paused).toBe(false);
  });
});
