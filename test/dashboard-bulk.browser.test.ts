/**
 * Bulk operations in the dashboard (docs/dashboard.md, "Bulk operations"), in a real headless
 * Chromium against a real service on each driver: rows selected by checkbox and by `x`, Retry of
 * the selection (enabled by status, confirmed with the count), "Select all N matching this
 * filter" across more rows than a page with N from a dry run (the API's own count), Cancel of
 * them all with the progress bar reaching done and the table refreshed. Screenshots of the bar,
 * the confirmation and the progress, light and dark, in docs/screenshots/bulk-*.png with
 * UPDATE_SCREENSHOTS=1 (test-results/ otherwise; SQLite run only). Skipped, with one line, when
 * /usr/bin/chromium is missing, except under CI=true.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chromiumAvailable as available,
  chromiumRequired as required,
  CHROMIUM,
  launchChromium,
  SHOTS,
  signIn,
  switchableFailure,
} from './support/browser.js';
import { BOTH_SERVICE_DBS } from './support/drivers.js';
import { finished, startTestService, statusOf, type TestService, withToken } from './support/service.js';

const TOKEN = 'dashboard-bulk-token';
if (!available && !required) console.log(`dashboard bulk browser tests skipped: ${CHROMIUM} not found`);

/** Fails while `flaky.failing` is true, so a test can retry it into success. */
const flaky = switchableFailure();

describe.each(BOTH_SERVICE_DBS)('dashboard bulk operations in Chromium on %s', (name, database, skip) => {
  const run = (available || required) && !skip;
  let service: TestService;
  let browser: Browser;
  let page: Page;
  let cleanup: () => Promise<void>;
  const { api, post } = withToken(() => service, TOKEN);
  const open = async (search: string) => {
    await page.goto(`${service.url}/dashboard${search}`);
    await expect.poll(() => page.textContent('#live')).toBe('live');
  };
  const rowIds = async () =>
    Promise.all((await page.locator('#rows tr').all()).map((row) => row.getAttribute('data-id')));
  const shoot = async (file: string) => {
    if (name !== 'sqlite') return;
    mkdirSync(SHOTS, { recursive: true });
    // The task card at the top of the window: the bar, the dialog over the table, the progress.
    await page.evaluate("window.scrollTo(0, document.getElementById('tasks-card').offsetTop - 16)");
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: `${SHOTS}/${file}.png` });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SHOTS}/${file}-dark.png` });
    await page.emulateMedia({ colorScheme: 'light' });
  };

  beforeAll(async () => {
    if (!run) return;
    const db = database();
    cleanup = db.cleanup;
    service = await startTestService(
      { apiToken: TOKEN, pollMs: 50, ...(db.db === undefined ? {} : { db: db.db }) },
      [flaky.definition],
    );
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, service.url, TOKEN);
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await cleanup?.();
  });

  it.skipIf(!run)(
    'retries the selected rows: checkbox and x select, buttons follow the statuses',
    async () => {
      flaky.failing = true;
      const failed: string[] = [];
      for (let i = 0; i < 3; i++) failed.push(await post({ action: 'flaky', data: { i }, max_attempts: 1 }));
      for (const id of failed) expect((await finished(api, id)).status).toBe('failed');
      const done = await post({ action: 'uppercase', data: { text: 'done' } });
      expect((await finished(api, done)).status).toBe('completed');

      await open('?action=flaky');
      await expect.poll(rowIds).toEqual([...failed].reverse());
      expect(await page.isHidden('#bulk-bar')).toBe(true);
      // Retry and Cancel need the operate scope, Delete admin (scoped tokens hide what they may not use).
      expect(await page.getAttribute('#bulk-retry', 'data-scope')).toBe('operate');
      expect(await page.getAttribute('#bulk-cancel', 'data-scope')).toBe('operate');
      expect(await page.getAttribute('#bulk-delete', 'data-scope')).toBe('admin');

      // The newest by its checkbox (the row does not open); from there j moves on and x ticks.
      await page.check(`#rows tr[data-id="${failed[2]}"] input.row-select`);
      expect(await page.isHidden('#detail')).toBe(true);
      await page.keyboard.press('j');
      await page.keyboard.press('x');
      expect(await page.isChecked(`#rows tr[data-id="${failed[1]}"] input.row-select`)).toBe(true);
      expect(await page.textContent('#bulk-selected')).toBe('2 selected');
      expect(await page.isChecked('#select-page')).toBe(false); // indeterminate: not the whole page
      // Failed tasks can be retried and deleted, not cancelled.
      expect(await page.isEnabled('#bulk-retry')).toBe(true);
      expect(await page.isDisabled('#bulk-cancel')).toBe(true);
      expect(await page.isEnabled('#bulk-delete')).toBe(true);
      await page.keyboard.press('?');
      expect(await page.textContent('#help')).toContain('Select the task for Retry, Cancel or Delete');
      await page.keyboard.press('Escape');

      flaky.failing = false;
      await page.click('#bulk-retry');
      await page.locator('#confirm').waitFor({ state: 'visible' });
      expect(await page.textContent('#confirm h2')).toBe('Retry 2 selected tasks?');
      await page.click('#confirm-ok');
      await expect
        .poll(() => page.getAttribute('#bulk-progress', 'data-state'), { timeout: 10_000 })
        .toBe('done');
      expect(await page.textContent('#bulk-progress-text')).toBe('Done: 2 of 2 retried.');
      for (const id of failed.slice(1)) expect((await finished(api, id)).status).toBe('completed');
      expect(await statusOf(api, failed[0]!)).toBe('failed'); // not selected: left alone
      // The table is refreshed and the selection is gone.
      await expect
        .poll(() => page.getAttribute(`#rows tr[data-id="${failed[1]}"]`, 'data-status'), { timeout: 10_000 })
        .toBe('completed');
      expect(await page.isHidden('#bulk-bar')).toBe(true);

      // A mixed selection: only the rows the op applies to are sent, and the question says so.
      await page.check(`#rows tr[data-id="${failed[0]}"] input.row-select`);
      await page.check(`#rows tr[data-id="${failed[1]}"] input.row-select`);
      await page.click('#bulk-retry');
      expect(await page.textContent('#confirm h2')).toBe('Retry 1 selected task?');
      expect(await page.textContent('#confirm p')).toContain('1 other selected is not failed or cancelled');
      await page.click('#confirm-cancel'); // Back in the dialog sends nothing
      expect(await statusOf(api, failed[0]!)).toBe('failed');
    },
  );

  it.skipIf(!run)(
    'selects all N matching the filter (more than a page), confirms the count, cancels them with progress',
    async () => {
      const later: string[] = [];
      for (let i = 0; i < 40; i++)
        later.push(await post({ action: 'later', data: { i }, delay_ms: 3_600_000 }));
      const other = await post({ action: 'other', data: {}, delay_ms: 3_600_000 });

      await open('?status=queued&action=later');
      await expect.poll(() => page.locator('#rows tr').count()).toBe(25);
      await page.check('#select-page');
      expect(await page.textContent('#bulk-all')).toBe('All 25 on this page are selected.');
      // N is the API's own dry-run count of the same filter.
      const dry = await api('/tasks/bulk', {
        method: 'POST',
        json: { op: 'cancel', filter: { status: 'queued', action: 'later' }, dry_run: true },
      });
      expect(dry.body).toMatchObject({ matched: 40, matched_exact: true });
      await expect
        .poll(() => page.textContent('#bulk-select-all'))
        .toBe('Select all 40 matching this filter');
      await shoot('bulk-selection');
      await page.click('#bulk-select-all');
      expect(await page.textContent('#bulk-selected')).toBe('40 selected');
      expect(await page.textContent('#bulk-all')).toBe('All 40 tasks matching this filter are selected.');
      // Queued tasks can be cancelled and deleted, not retried.
      expect(await page.isDisabled('#bulk-retry')).toBe(true);

      await page.click('#bulk-cancel');
      await page.locator('#confirm').waitFor({ state: 'visible' });
      expect(await page.textContent('#confirm h2')).toBe(
        'Cancel 40 tasks matching status=queued action=later?',
      );
      expect(await page.textContent('#confirm-ok')).toBe('Cancel 40 tasks');
      expect(await page.textContent('#confirm-cancel')).toBe('Back');
      await shoot('bulk-confirm');
      await page.click('#confirm-ok');
      await expect
        .poll(() => page.getAttribute('#bulk-progress', 'data-state'), { timeout: 10_000 })
        .toBe('done');
      expect(await page.textContent('#bulk-progress-text')).toBe('Done: 40 of 40 cancelled.');
      expect(await page.evaluate<number>("document.getElementById('bulk-progress-bar').value")).toBe(40);
      // The list is read again: nothing queued of that action is left.
      await expect.poll(() => page.locator('#rows tr').count(), { timeout: 10_000 }).toBe(0);
      expect(await page.isVisible('#empty')).toBe(true);
      for (const id of later) expect(await statusOf(api, id)).toBe('cancelled');
      expect(await statusOf(api, other)).toBe('queued');
      await page.selectOption('#filter-status', 'cancelled');
      await expect.poll(() => page.locator('#rows tr').count()).toBe(25);
      // The counts follow too (the stats stream).
      await expect.poll(() => page.textContent('[data-count="cancelled"]'), { timeout: 10_000 }).toBe('40');
      await shoot('bulk-progress');
    },
  );

  it.skipIf(!run)('shows an API error instead of swallowing it', async () => {
    await page.route('**/tasks/bulk', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: 'the database is unavailable', code: 'TQ_ERR_UNAVAILABLE' }),
      }),
    );
    await open('?status=cancelled&action=later');
    await expect.poll(() => page.locator('#rows tr').count()).toBe(25);
    await page.check('#rows tr:first-child input.row-select');
    await page.click('#bulk-delete');
    await page.click('#confirm-ok');
    await expect
      .poll(() => page.textContent('#bulk-note'))
      .toBe('Delete failed: the database is unavailable');
    expect(await page.getAttribute('#bulk-note', 'role')).toBe('alert');
    expect(await page.textContent('#bulk-selected')).toBe('1 selected'); // kept, to try again
    await page.unroute('**/tasks/bulk');
  });
});
