/**
 * The dashboard's attempt timeline (task panel) and nodes view (issue 11 parts 1 and 4) in a real
 * headless Chromium against real services. Skipped, with one line on the console, when
 * /usr/bin/chromium is missing, except under CI=true, where it must run.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { finished, startTestService, type TestService } from './support/service.js';
import { tempDbPath } from './support/temp.js';
import { CHROMIUM, SHOTS, chromiumAvailable, chromiumRequired, launchChromium } from './support/browser.js';

const available = chromiumAvailable;
const required = chromiumRequired;
if (!available && !required) console.log(`dashboard history browser tests skipped: ${CHROMIUM} not found`);

/** Fails with a stack on its first two runs, then completes: three attempts to show. */
const flaky: HandlerDefinition = {
  action: 'charge-card',
  maxAttempts: 5,
  handle: (_task, ctx) => {
    if (ctx.attempt === 1) throw new Error('card processor answered 503 Service Unavailable');
    if (ctx.attempt === 2) throw new TypeError("Cannot read properties of undefined (reading 'token')");
    return { charged: true };
  },
};
/** Runs until its signal aborts: a task that stays running on its node. */
const blocking: HandlerDefinition = {
  action: 'resize-image',
  handle: (_task, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)),
};

describe.skipIf(!available && !required)('attempt timeline and nodes view in Chromium', () => {
  const db = tempDbPath();
  let service: TestService;
  let browser: Browser;
  let page: Page;
  const stopped: TestService[] = [];

  const post = async (svc: TestService, body: object) => {
    const res = await svc.http('/tasks', { method: 'POST', json: body });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  const texts = async (selector: string) =>
    Promise.all((await page.locator(selector).all()).map((node) => node.textContent()));
  const attributes = async (selector: string, name: string) =>
    Promise.all((await page.locator(selector).all()).map((node) => node.getAttribute(name)));
  const open = async (svc: TestService, path: string) => {
    await page.goto(`${svc.url}${path}`);
    await expect.poll(() => page.textContent('#live')).toBe('live');
  };

  beforeAll(async () => {
    service = await startTestService({ db: db.path, backoffMs: 0 }, [flaky, blocking]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    for (const s of stopped) await s.stop().catch(() => {});
    await service?.stop();
    db.cleanup();
  });

  it('shows every attempt in the task panel, newest first, with outcome, node, error and stack', async () => {
    const id = await post(service, { action: 'charge-card', data: { order: 1042, amount_eur: 59.9 } });
    expect((await finished(service.http, id)).status).toBe('completed');
    await page.emulateMedia({ colorScheme: 'light' });
    await open(service, `/dashboard?task=${id}`);
    await expect
      .poll(() => attributes('#attempts-list > li', 'data-outcome'))
      .toEqual(['completed', 'error', 'error']);
    const heads = await texts('#attempts-list .attempt-number');
    expect(heads).toEqual(['Attempt 3', 'Attempt 2', 'Attempt 1']);
    const nodes = await texts('#attempts-list .attempt-node');
    expect(nodes).toEqual(Array(3).fill(`on ${service.service.node.id}`));
    expect(await texts('#attempts-list .attempt-error')).toEqual([
      "Cannot read properties of undefined (reading 'token')",
      'card processor answered 503 Service Unavailable',
    ]);
    // Stacks are folded; opening one shows it.
    const stack = page.locator('#attempts-list .attempt-stack').nth(1);
    expect(await stack.locator('pre').isVisible()).toBe(false);
    await stack.locator('summary').click();
    expect(await stack.locator('pre').textContent()).toMatch(/^Error: card processor answered 503/);
    await page.screenshot({ path: `${SHOTS}/history-task.png` });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SHOTS}/history-task-dark.png` });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('shows the running attempt and the node running it, live', async () => {
    const started = new Promise((resolve) => service.service.pool?.once('taskStarted', resolve));
    const id = await post(service, { action: 'resize-image', data: { width: 640 } });
    await started;
    await open(service, `/dashboard?task=${id}`);
    await expect.poll(() => attributes('#attempts-list > li', 'data-outcome')).toEqual(['running']);
    expect(await page.textContent('#attempts-list .attempt-node')).toBe(`on ${service.service.node.id}`);
    // Cancelled from the panel: the stream pushes the cancelled attempt.
    await page.click('#detail-cancel');
    await expect.poll(() => attributes('#attempts-list > li', 'data-outcome')).toEqual(['cancelled']);
  });

  it('lists live and gone nodes with what each runs; a task link opens the panel', async () => {
    // A worker node on the same database that stops: listed as gone.
    const worker = await startTestService({ db: db.path, role: 'worker' });
    await worker.stop();
    const started = new Promise((resolve) => service.service.pool?.once('taskStarted', resolve));
    const running = await post(service, { action: 'resize-image', data: { width: 1280 } });
    await started;
    await service.service.node.beat();
    await open(service, '/dashboard?view=nodes');
    expect(await page.locator('#tabs').isVisible()).toBe(true);
    const row = (id: string) => page.locator(`#nodes-rows tr[data-node="${id}"]`);
    await expect.poll(() => row(service.service.node.id).getAttribute('data-status')).toBe('live');
    expect(await row(worker.service.node.id).getAttribute('data-status')).toBe('gone');
    expect(await row(service.service.node.id).locator('td').nth(3).textContent()).toBe('1 / 2');
    expect(await page.textContent('#nodes-summary')).toBe('1 live of 2 in the last hour');
    expect(await page.locator('#nodes-warning').isVisible()).toBe(false);
    await page.screenshot({ path: `${SHOTS}/history-nodes.png` });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SHOTS}/history-nodes-dark.png` });
    await page.emulateMedia({ colorScheme: 'light' });
    await row(service.service.node.id).locator('.task-link').click();
    await expect.poll(() => new URL(page.url()).searchParams.get('task')).toBe(running);
    await expect.poll(() => page.textContent('#detail-status')).toBe('running');
    await page.click('#detail-cancel');
    await page.click('#detail-close');
  });

  it('warns on every page when tasks are queued and no worker is live', async () => {
    const apiDb = tempDbPath();
    const api = await startTestService({ db: apiDb.path, role: 'api' });
    stopped.push(api);
    try {
      await api.service.node.beat();
      await post(api, { action: 'uppercase', data: { text: 'waits' } });
      await post(api, { action: 'uppercase', data: { text: 'waits too' } });
      await open(api, '/dashboard');
      const warning = page.locator('#nodes-warning');
      await expect.poll(() => warning.isVisible()).toBe(true);
      expect(await warning.textContent()).toBe(
        'No live worker: 2 tasks are queued and no live worker node is running: they wait until one starts.',
      );
      await page.screenshot({ path: `${SHOTS}/history-no-worker.png` });
      await page.click('#tabs a[data-page="nodes"]');
      await expect.poll(() => attributes('#nodes-rows tr', 'data-status')).toEqual(['live']);
      expect(await warning.isVisible()).toBe(true);
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.screenshot({ path: `${SHOTS}/history-no-worker-dark.png` });
      await page.emulateMedia({ colorScheme: 'light' });
    } finally {
      await api.stop();
      stopped.pop();
      apiDb.cleanup();
    }
  });
});
