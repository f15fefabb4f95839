/**
 * The dashboard in a real headless Chromium against a real service. Skipped, with one line on the
 * console, when /usr/bin/chromium is missing, except under CI=true, where it must run.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TASK_STATUSES } from '../src/core/task.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { finished, startTestService, statusOf, type Http, type TestService } from './support/service.js';
import { nextSignal } from './support/signals.js';

/** TASKQ_CHROMIUM overrides the path (and lets the skip path be tried). */
const CHROMIUM = process.env.TASKQ_CHROMIUM ?? '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token';
// Screenshots land in test-results/ (ignored by git); UPDATE_SCREENSHOTS=1 refreshes the README's copies.
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? 'docs/screenshots' : 'test-results/screenshots';
const SCREENSHOT = `${SHOTS}/dashboard.png`;
const available = existsSync(CHROMIUM);
const required = process.env.CI === 'true';
if (!available && !required) console.log(`dashboard browser tests skipped: ${CHROMIUM} not found`);

/** Fails while `flaky.failing` is true, so a test can retry it into success. */
const flaky = {
  failing: true,
  definition: {
    action: 'flaky',
    handle: () => {
      if (flaky.failing) throw new Error('the upstream service answered 503');
      return { ok: true };
    },
  } satisfies HandlerDefinition,
};

describe.skipIf(!available && !required)('dashboard in Chromium', () => {
  let service: TestService;
  let browser: Browser;
  let page: Page;
  const auth = { authorization: `Bearer ${TOKEN}` };
  /** The service's API, with the token. */
  const api: Http = (path, init = {}) =>
    service.http(path, { ...init, headers: { ...auth, ...init.headers } });
  const post = async (body: object) => {
    const res = await api('/tasks', { method: 'POST', json: body });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };

  beforeAll(async () => {
    if (!available) throw new Error(`CI=true but ${CHROMIUM} is missing: install chromium`);
    // A real port: Chromium loads the dashboard over it.
    service = await startTestService({ apiToken: TOKEN }, [flaky.definition]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
  });

  it('asks for the token, then shows live counts, filters, task details, retry, cancel', async () => {
    await page.goto(`${service.url}/dashboard`);
    // The shell loads without a token; the data calls get 401, so it asks for one.
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#login-token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await expect.poll(() => page.textContent('#live')).toBe('live');
    const count = (status: string) => page.textContent(`[data-count="${status}"]`);
    expect(await count('completed')).toBe('0');

    // The statuses come from GET /meta, which reads them from core: the filter and cards list them.
    const meta = (await api('/meta')).body as { statuses: string[] };
    expect(meta.statuses).toEqual([...TASK_STATUSES]);
    const attributes = async (selector: string, name: string) =>
      Promise.all((await page.locator(selector).all()).map((node) => node.getAttribute(name)));
    expect(await attributes('#filter-status option', 'value')).toEqual(['', ...meta.statuses]);
    const cards = await attributes('.count[data-status]', 'data-status');
    expect(cards).toEqual(meta.statuses);

    // Counts change in the page without a reload (server-sent events).
    const done: string[] = [];
    for (let i = 0; i < 12; i++) done.push(await post({ action: 'uppercase', data: { text: `hello ${i}` } }));
    for (let i = 0; i < 5; i++) done.push(await post({ action: 'sum', data: { numbers: [i, 2, 3] } }));
    const failing = await post({ action: 'flaky', data: { order: 42 }, max_attempts: 1 });
    const waiting = await post({ action: 'sum', data: { numbers: [1] }, delay_ms: 3_600_000 });
    expect((await finished(api, failing)).status).toBe('failed');
    await expect.poll(() => count('completed'), { timeout: 10_000 }).toBe('17');
    await expect.poll(() => count('failed')).toBe('1');
    await expect.poll(() => count('queued')).toBe('1');

    // Filter by action, then by status.
    await page.selectOption('#filter-action', 'flaky');
    await expect.poll(() => page.locator('#rows tr').count()).toBe(1);
    await page.selectOption('#filter-action', '');
    await page.selectOption('#filter-status', 'completed');
    await expect.poll(() => page.locator('#rows tr').count()).toBe(17);
    expect(await page.locator('#rows tr[data-status="completed"]').count()).toBe(17);
    await page.selectOption('#filter-status', '');
    await expect.poll(() => page.locator('#rows tr').count()).toBe(19);

    // Open the failed task from the table: its error and data are shown; Retry makes it run again.
    await page.click(`#rows tr[data-id="${failing}"]`);
    await expect.poll(() => page.textContent('#detail-id')).toBe(failing);
    expect(await page.textContent('#detail-error')).toContain('503');
    expect(await page.textContent('#detail-data')).toContain('"order": 42');
    expect(await page.isDisabled('#detail-cancel')).toBe(true);
    flaky.failing = false;
    // The retry is the browser's request: once the task runs again, the long-poll sees it end.
    const rerun = nextSignal(service.service.pool!, 'taskStarted', (task) => task.id === failing);
    await page.click('#detail-retry');
    await rerun;
    expect((await finished(api, failing)).status).toBe('completed');
    await expect.poll(() => page.textContent('#detail-status'), { timeout: 10_000 }).toBe('completed');
    expect(await page.textContent('#detail-result')).toContain('"ok": true');

    // Find the delayed task by id and cancel it.
    await page.fill('#search-id', waiting);
    await page.press('#search-id', 'Enter');
    await expect.poll(() => page.textContent('#detail-id')).toBe(waiting);
    await page.click('#detail-cancel');
    await expect.poll(() => page.textContent('#detail-status')).toBe('cancelled');
    expect(await statusOf(api, waiting)).toBe('cancelled');
    await expect.poll(() => count('cancelled')).toBe('1');

    // A task that failed and stays failed makes the screenshot show every state.
    flaky.failing = true;
    const failedAgain = await post({ action: 'flaky', data: { order: 7 }, max_attempts: 1 });
    expect((await finished(api, failedAgain)).status).toBe('failed');
    await post({ action: 'uppercase', data: { text: 'later' }, delay_ms: 600_000 });
    await page.click(`#detail-close`);
    await page.reload();
    await expect.poll(() => page.textContent('#live')).toBe('live'); // the token survived the reload
    await expect.poll(() => count('failed')).toBe('1');
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    await page.click(`#rows tr[data-id="${failedAgain}"]`);
    await expect.poll(() => page.textContent('#detail-status')).toBe('failed');
    await page.screenshot({ path: `${SHOTS}/dashboard-task.png` });
  });

  it('stays readable in a narrow window', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#detail-close');
    // A string, because this project's TypeScript has no DOM types.
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `${SHOTS}/dashboard-narrow.png`, fullPage: true });
  });

  it('shows a claimed task whose handler has not started as waiting for a slot', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    // Such a task lives only for a moment in a real service, so the API's answer is stubbed.
    const id = '00000000-0000-4000-8000-00000000c1a1';
    const now = new Date().toISOString();
    const task = {
      id,
      action: 'sum',
      data: {},
      status: 'running',
      result: null,
      error: null,
      attempts: 1,
      max_attempts: 3,
      priority: 0,
      progress: null,
      progress_message: null,
      run_at: now,
      created_at: now,
      claimed_at: now,
      started_at: null,
      processed_at: null,
    };
    await page.route(`**/tasks/${id}`, (route) => route.fulfill({ json: task }));
    await page.fill('#search-id', id);
    await page.press('#search-id', 'Enter');
    await expect.poll(() => page.textContent('#detail-id')).toBe(id);
    const facts = await page.textContent('#detail-facts');
    expect(facts).toContain('claimed, waiting for a slot');
    expect(facts).toContain('Claimed');
    expect(await page.isDisabled('#detail-cancel')).toBe(false);
    expect(await page.isDisabled('#detail-retry')).toBe(true);
    await page.unroute(`**/tasks/${id}`);
    await page.click('#detail-close');
  });

  it('says in the console when the live stream drops, and reconnects', async () => {
    await page.locator('#live[data-state="on"]').waitFor();
    const warned = page.waitForEvent(
      'console',
      (m) => m.type() === 'warning' && /live stats stream dropped/.test(m.text()),
    );
    service.service.app.server.closeAllConnections(); // the server side of every socket, the stream's included
    await warned;
    await page.locator('#live[data-state="on"]').waitFor({ timeout: 10_000 });
  });
});
