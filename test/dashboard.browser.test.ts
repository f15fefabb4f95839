/**
 * The dashboard in a real headless Chromium against a real service. Skipped, with one line on the
 * console, when /usr/bin/chromium is missing, except under CI=true, where it must run.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TASK_STATUSES } from '../src/core/task.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { finished, startTestService, statusOf, type TestService, withToken } from './support/service.js';
import { gate, nextSignal, responseClosed } from './support/signals.js';
import {
  CHROMIUM,
  SHOTS,
  chromiumAvailable,
  chromiumRequired,
  launchChromium,
  switchableFailure,
} from './support/browser.js';

const TOKEN = 'dashboard-test-token';
const SCREENSHOT = `${SHOTS}/dashboard.png`;
const available = chromiumAvailable;
const required = chromiumRequired;
if (!available && !required) console.log(`dashboard browser tests skipped: ${CHROMIUM} not found`);

/** Fails while `flaky.failing` is true, so a test can retry it into success. */
const flaky = switchableFailure();

/** Reports 30 %, waits for the test, reports 60 %, waits again, then completes: a task to tail live. */
const steps = {
  first: gate(),
  second: gate(),
  definition: {
    action: 'steps',
    handle: async (_task, ctx) => {
      await ctx.progress(30, 'fetching');
      await steps.first.promise;
      await ctx.progress(60, 'writing');
      await steps.second.promise;
      return { steps: 2 };
    },
  } satisfies HandlerDefinition,
};

describe.skipIf(!available && !required)('dashboard in Chromium', () => {
  let service: TestService;
  let browser: Browser;
  let page: Page;
  const { api, post } = withToken(() => service, TOKEN);

  const attributes = async (selector: string, name: string) =>
    Promise.all((await page.locator(selector).all()).map((node) => node.getAttribute(name)));
  const rowIds = () => attributes('#rows tr', 'data-id');
  /** The page's URL query: the dashboard keeps its state there. */
  const query = () => new URL(page.url()).searchParams;
  /** An expression evaluated in the page (a string, because this project's TypeScript has no DOM types). */
  const inPage = <T>(expression: string) => page.evaluate<T>(expression);
  const signedIn = async (path = '/dashboard') => {
    await page.goto(`${service.url}${path}`);
    await expect.poll(() => page.textContent('#live')).toBe('live');
  };

  beforeAll(async () => {
    // A real port: Chromium loads the dashboard over it.
    service = await startTestService({ apiToken: TOKEN }, [flaky.definition, steps.definition]);
    browser = await launchChromium();
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
    // The panel follows the task's event stream: its first event is the task.
    const events = `**/tasks/${id}/events`;
    await page.route(events, (route) =>
      route.fulfill({
        contentType: 'text/event-stream',
        body: `event: task\ndata: ${JSON.stringify(task)}\n\n`,
      }),
    );
    await page.fill('#search-id', id);
    await page.press('#search-id', 'Enter');
    await expect.poll(() => page.textContent('#detail-id')).toBe(id);
    const facts = await page.textContent('#detail-facts');
    expect(facts).toContain('claimed, waiting for a slot');
    expect(facts).toContain('Claimed');
    expect(await page.isDisabled('#detail-cancel')).toBe(false);
    expect(await page.isDisabled('#detail-retry')).toBe(true);
    await page.unroute(events);
    await page.click('#detail-close');
  });

  it('loads every file its pages ask for (the icon too), with no error on the console', async () => {
    const errors: string[] = [];
    const onConsole = (m: { type(): string; text(): string }) => {
      if (m.type() === 'error') errors.push(m.text());
    };
    const onPageError = (err: Error) => errors.push(err.message);
    page.on('console', onConsole);
    page.on('pageerror', onPageError);
    try {
      await signedIn();
      await page.goto(`${service.url}/docs`);
      await page.locator('#docs section.card').first().waitFor(); // the OpenAPI document, rendered
      const iconLink = "document.querySelector('link[rel=icon]')?.getAttribute('href') ?? null";
      expect(await inPage<string | null>(iconLink)).toBe('/dashboard/icon.svg');
      const icon = await api('/dashboard/icon.svg');
      expect(icon.status).toBe(200);
      expect(icon.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
      await signedIn(); // back on the dashboard, where the next tests start
      expect(errors).toEqual([]);
    } finally {
      page.off('console', onConsole);
      page.off('pageerror', onPageError);
    }
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

  it('follows the system colour scheme, has a light/dark toggle it remembers, and so does the chart', async () => {
    await page.emulateMedia({ colorScheme: 'light' });
    await signedIn();
    expect(await page.inputValue('#theme')).toBe('system');
    const background = () => inPage<string>('getComputedStyle(document.documentElement).backgroundColor');
    const bar = () =>
      inPage<string>("getComputedStyle(document.querySelector('.chart .bar-completed')).fill");
    const light = { background: await background(), bar: await bar() };
    expect(light.background).toBe('rgb(245, 246, 248)');

    await page.emulateMedia({ colorScheme: 'dark' });
    await expect.poll(background).toBe('rgb(15, 19, 28)');
    const dark = { background: await background(), bar: await bar() };
    expect(dark.bar).not.toBe(light.bar);
    await page.screenshot({ path: `${SHOTS}/dashboard-dark.png`, fullPage: true });
    const failed = ((await api('/tasks?status=failed&limit=1')).body as { tasks: { id: string }[] }).tasks[0]!
      .id;
    await page.fill('#search-id', failed);
    await page.press('#search-id', 'Enter');
    await expect.poll(() => page.textContent('#detail-status')).toBe('failed');
    await page.screenshot({ path: `${SHOTS}/dashboard-task-dark.png` });
    await page.click('#detail-close');

    // The toggle beats the system's choice, and this browser remembers it across a reload.
    await page.selectOption('#theme', 'light');
    expect(await background()).toBe(light.background);
    expect(await bar()).toBe(light.bar);
    await page.reload();
    await expect.poll(() => page.inputValue('#theme')).toBe('light');
    expect(await background()).toBe(light.background);
    await page.emulateMedia({ colorScheme: 'light' });
    await page.selectOption('#theme', 'dark');
    expect(await background()).toBe(dark.background);
    expect(await bar()).toBe(dark.bar);
    await page.selectOption('#theme', 'system');
    expect(await background()).toBe(light.background);
  });

  it('keeps filters, page and open task in the URL: reload restores them, back and forward walk them', async () => {
    // 31 queued uppercase tasks (one from the first test): two pages of 25 and 6.
    const later = Array.from({ length: 30 }, (_, i) => ({
      action: 'uppercase',
      data: { i },
      delay_ms: 3_600_000,
    }));
    expect((await api('/tasks/batch', { method: 'POST', json: { tasks: later } })).status).toBe(202);
    await signedIn();
    await page.selectOption('#filter-status', 'queued');
    await expect.poll(() => query().get('status')).toBe('queued');
    await page.selectOption('#filter-action', 'uppercase');
    await expect.poll(() => page.locator('#rows tr').count()).toBe(25);
    expect(query().get('action')).toBe('uppercase');
    const firstPage = await rowIds();
    await page.click('#older');
    await expect.poll(() => page.locator('#rows tr').count()).toBe(6);
    expect(query().get('cursor')).toBeTruthy();
    const secondPage = await rowIds();
    const opened = secondPage[0]!;
    await page.click(`#rows tr[data-id="${opened}"]`);
    await expect.poll(() => page.textContent('#detail-id')).toBe(opened);
    expect(query().get('task')).toBe(opened);

    // A reload restores it all: the filters, page 2 (and the way back to page 1), the open task.
    await page.reload();
    await expect.poll(() => page.textContent('#detail-id')).toBe(opened);
    await expect.poll(rowIds).toEqual(secondPage);
    expect(await page.inputValue('#filter-status')).toBe('queued');
    expect(await page.inputValue('#filter-action')).toBe('uppercase');
    expect(await page.textContent('#page-label')).toBe('Page 2');

    // Back closes the panel, then returns to page 1; forward walks the same steps again.
    await page.goBack();
    await expect.poll(() => page.isHidden('#detail')).toBe(true);
    await page.goBack();
    await expect.poll(rowIds).toEqual(firstPage);
    expect(await page.textContent('#page-label')).toBe('Page 1');
    await page.goForward();
    await expect.poll(rowIds).toEqual(secondPage);
    await page.goForward();
    await expect.poll(() => page.textContent('#detail-id')).toBe(opened);
    await page.click('#detail-close');
    await page.click('#newer');
    await expect.poll(rowIds).toEqual(firstPage);
    expect(query().get('cursor')).toBeNull();

    // A filter key the dashboard has no control for goes to GET /tasks as it is, and shows.
    const asked = page.waitForRequest((r) => {
      const url = new URL(r.url());
      return url.pathname === '/tasks' && url.searchParams.get('data.i') === '3';
    });
    await signedIn('/dashboard?action=uppercase&data.i=3');
    await asked;
    await expect.poll(() => page.textContent('#filter-extra')).toContain('data.i=3');
    await page.click('#filter-extra .chip');
    await expect.poll(() => query().has('data.i')).toBe(false);
    expect(query().get('action')).toBe('uppercase');
  });

  it('has keyboard shortcuts (/ j k Enter Esc ?), none of which fires while typing', async () => {
    await signedIn();
    await expect.poll(() => page.locator('#rows tr').count()).toBe(25);
    const ids = await rowIds();
    const selected = () => attributes('#rows tr[aria-selected="true"]', 'data-id');
    await page.keyboard.press('/');
    expect(await inPage<string>('document.activeElement.id')).toBe('search-id');
    // In the field, j, k, ? and Enter are typing: nothing moves, no overlay opens.
    await page.keyboard.type('jk?');
    expect(await page.inputValue('#search-id')).toBe('jk?');
    expect(await selected()).toEqual([]);
    expect(await page.isHidden('#help')).toBe(true);
    await page.fill('#search-id', '');
    await page.locator('#search-id').blur();

    await page.keyboard.press('j');
    expect(await selected()).toEqual([ids[0]]);
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    expect(await selected()).toEqual([ids[2]]);
    await page.keyboard.press('k');
    expect(await selected()).toEqual([ids[1]]);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#detail-id')).toBe(ids[1]);
    expect(query().get('task')).toBe(ids[1]);
    await page.keyboard.press('Escape');
    await expect.poll(() => page.isHidden('#detail')).toBe(true);
    expect(query().get('task')).toBeNull();

    await page.keyboard.press('?');
    await page.locator('#help').waitFor({ state: 'visible' });
    const help = await page.textContent('#help');
    for (const line of ['Find a task by id', 'Select the next / previous task', 'Open the selected task'])
      expect(help).toContain(line);
    expect(help).toContain('Close the task panel');
    await page.screenshot({ path: `${SHOTS}/dashboard-shortcuts.png` });
    await page.keyboard.press('Escape');
    await expect.poll(() => page.isHidden('#help')).toBe(true);
    await page.click('#help-button'); // the same list, for the mouse
    await page.locator('#help').waitFor({ state: 'visible' });
    await page.keyboard.press('Escape');
    await expect.poll(() => page.isHidden('#help')).toBe(true);
  });

  it('tails the open task: progress and status come from its event stream, with no re-read', async () => {
    const id = await post({ action: 'steps', data: {} });
    const reads: string[] = [];
    const streams: string[] = [];
    const track = (request: { url(): string }) => {
      const path = new URL(request.url()).pathname;
      if (path === `/tasks/${id}`) reads.push(path);
      if (path === `/tasks/${id}/events`) streams.push(path);
    };
    page.on('request', track);
    await signedIn(`/dashboard?task=${id}`);
    const facts = () => page.textContent('#detail-facts');
    await expect.poll(facts).toContain('30% · fetching');
    expect(await page.textContent('#detail-status')).toBe('running');
    steps.first.open();
    await expect.poll(facts).toContain('60% · writing');
    steps.second.open();
    await expect.poll(() => page.textContent('#detail-status')).toBe('completed');
    expect(await page.textContent('#detail-result')).toContain('"steps": 2');
    page.off('request', track);
    expect(reads).toEqual([]);
    expect(streams).toEqual([`/tasks/${id}/events`]);
  });

  it('says so when a link names a task that does not exist', async () => {
    await signedIn('/dashboard?task=00000000-0000-4000-8000-000000000404');
    await expect.poll(() => page.textContent('#detail-message')).toContain('No task with id');
    expect(await page.isHidden('#detail-body')).toBe(true);
    await page.keyboard.press('Escape');
    await expect.poll(() => query().has('task')).toBe(false);
  });

  it("closes the task's stream when the panel closes", async () => {
    const id = await post({ action: 'uppercase', data: { text: 'held' }, delay_ms: 3_600_000 });
    const closed = responseClosed(service.service.app.server, `/tasks/${id}/events`);
    await signedIn(`/dashboard?task=${id}`);
    await expect.poll(() => page.textContent('#detail-status')).toBe('queued');
    await page.keyboard.press('Escape');
    await closed;
  });
});
