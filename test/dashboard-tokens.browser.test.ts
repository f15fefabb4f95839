/**
 * Scoped tokens in the dashboard, in a real headless Chromium against a real service
 * (docs/security.md, lib/access.js): a read-only token sees no operator buttons and no Audit tab;
 * an operate token sees Retry, Cancel, Pause and Run now but nothing that needs admin (the Audit
 * tab, bulk delete); an admin sees the Audit page with the entries of the actions just done,
 * filtered and paged. Screenshots of the Audit page, light and dark, in docs/screenshots/audit*.png
 * with UPDATE_SCREENSHOTS=1 (test-results/ otherwise). Skipped, with one line, when
 * /usr/bin/chromium is missing, except under CI=true.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, startTestService, type Http, type TestService } from './support/service.js';
import { tempDir } from './support/temp.js';
import {
  CHROMIUM,
  chromiumAvailable,
  chromiumRequired,
  launchChromium,
  SHOTS,
  signIn,
} from './support/browser.js';

const available = chromiumAvailable;
const required = chromiumRequired;
if (!available && !required) console.log(`dashboard tokens browser tests skipped: ${CHROMIUM} not found`);

const SECRETS = { viewer: 'viewer-secret-1', oncall: 'oncall-secret-1', root: 'root-secret-01' };
const TOKENS = `viewer:read:${SECRETS.viewer} oncall:operate:${SECRETS.oncall} root:admin:${SECRETS.root}`;

describe.skipIf(!available && !required)('dashboard with scoped tokens in Chromium', () => {
  let service: TestService;
  let browser: Browser;
  let dir: { dir: string; cleanup: () => void };
  const as =
    (secret: string): Http =>
    (path, init = {}) =>
      service.http(path, { ...init, headers: { authorization: `Bearer ${secret}`, ...init.headers } });
  const root = () => as(SECRETS.root);
  /** A task that failed (its numbers are not all numbers). */
  const failedTask = async () => {
    const res = await root()('/tasks', {
      method: 'POST',
      json: { action: 'sum', data: { numbers: [1, 'x'] }, max_attempts: 1 },
    });
    expect(res.status).toBe(202);
    expect((await finished(root(), res.body.id)).status).toBe('failed');
    return res.body.id as string;
  };

  /** A fresh tab signed in with `secret`, then at `path`. */
  async function signedIn(secret: string, path = '/dashboard'): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await signIn(page, service.url, secret);
    if (path !== '/dashboard') {
      await page.goto(`${service.url}${path}`);
      await page.locator('#live[data-state="on"]').waitFor({ timeout: 10_000 });
    }
    return page;
  }
  const visible = (page: Page, selector: string) => page.locator(selector).first().isVisible();

  beforeAll(async () => {
    dir = tempDir();
    const schedules = join(dir.dir, 'schedules.json');
    writeFileSync(
      schedules,
      JSON.stringify([{ name: 'nightly', cron: '0 3 * * *', action: 'uppercase', data: { text: 'n' } }]),
    );
    service = await startTestService({ tokens: TOKENS, schedules, pollMs: 50 });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    dir?.cleanup();
  });

  it('shows a read-only token no operator buttons and no Audit tab', async () => {
    const id = await failedTask();
    const page = await signedIn(SECRETS.viewer, `/dashboard?task=${id}`);
    await expect.poll(() => page.textContent('#detail-id')).toBe(id);
    expect(await page.locator('#detail-status').textContent()).toBe('failed');
    expect(await visible(page, '#detail-retry')).toBe(false);
    expect(await visible(page, '#detail-cancel')).toBe(false);
    // No bulk selection either: the rows show, their checkboxes do not.
    await page.locator('#rows tr').first().waitFor();
    expect(await visible(page, '#rows input.row-select')).toBe(false);
    expect(await visible(page, '#select-page')).toBe(false);
    expect(await visible(page, '#tabs a[data-page="actions"]')).toBe(true);
    expect(await visible(page, '#tabs a[data-page="audit"]')).toBe(false);

    await page.click('#tabs a[data-page="actions"]');
    await page.locator('#action-rows tr[data-action="sum"]').waitFor();
    expect(await page.locator('#action-rows [data-toggle]').count()).toBeGreaterThan(0);
    expect(await visible(page, '#action-rows [data-toggle]')).toBe(false);
    await page.goto(`${service.url}/dashboard?view=schedules`);
    await page.locator('#schedule-rows tr[data-schedule="nightly"]').waitFor();
    expect(await visible(page, '[data-run="nightly"]')).toBe(false);
    expect(await visible(page, '[data-toggle="nightly"]')).toBe(false);
    // Even at its URL the Audit page shows nothing to a token that may not read it.
    await page.goto(`${service.url}/dashboard?view=audit`);
    await page.locator('#live[data-state="on"]').waitFor();
    expect(await visible(page, '#audit-card')).toBe(false);
    await page.context().close();
  });

  it('shows an operate token Retry, Pause and Run now, and nothing that needs admin', async () => {
    const id = await failedTask();
    const page = await signedIn(SECRETS.oncall, `/dashboard?task=${id}`);
    await expect.poll(() => page.textContent('#detail-id')).toBe(id);
    expect(await visible(page, '#detail-retry')).toBe(true);
    expect(await visible(page, '#tabs a[data-page="audit"]')).toBe(false);
    // Nothing scoped admin shows, whatever view put it there (bulk delete, the Audit tab).
    for (const admin of await page.locator('[data-scope="admin"]').all())
      expect(await admin.isVisible()).toBe(false);
    await page.click('#detail-retry');
    const retried = async () =>
      (
        (await root()('/audit?token=oncall&action=tasks.retry')).body.entries as {
          target: string;
          status: number;
        }[]
      )
        .filter((e) => e.target === id)
        .map((e) => e.status);
    await expect.poll(retried).toEqual([200]);
    await page.click('#detail-close');
    // Bulk: Retry and Cancel, not Delete (admin).
    await page.locator('#rows tr').first().waitFor();
    await page.check('#select-page');
    await page.locator('#bulk-bar').waitFor({ state: 'visible' });
    expect(await visible(page, '#bulk-retry')).toBe(true);
    expect(await visible(page, '#bulk-cancel')).toBe(true);
    expect(await visible(page, '#bulk-delete')).toBe(false);
    await page.uncheck('#select-page');

    await page.click('#tabs a[data-page="actions"]');
    const sum = '#action-rows tr[data-action="sum"]';
    await page.locator(sum).waitFor();
    expect(await visible(page, `${sum} [data-toggle="sum"]`)).toBe(true);
    await page.click(`${sum} [data-toggle="sum"]`);
    await page.click('#confirm-ok');
    await expect.poll(() => page.textContent(`${sum} td:nth-child(2)`)).toBe('paused');
    await page.click(`${sum} [data-toggle="sum"]`);
    await page.click('#confirm-ok');
    await expect.poll(() => page.textContent(`${sum} td:nth-child(2)`)).toBe('active');
    await page.goto(`${service.url}/dashboard?view=schedules`);
    await page.locator('#schedule-rows tr[data-schedule="nightly"]').waitFor();
    expect(await visible(page, '[data-run="nightly"]')).toBe(true);
    expect(await visible(page, '[data-toggle="nightly"]')).toBe(true);
    await page.context().close();
  });

  it('shows an admin the Audit page with the actions just done, filtered and paged', async () => {
    const oncall = as(SECRETS.oncall);
    const bulk = await oncall('/tasks/bulk', {
      method: 'POST',
      json: { op: 'retry', filter: { status: 'failed', action: 'sum' }, dry_run: true },
    });
    expect(bulk.status).toBe(200);
    expect(
      (await oncall('/tasks/bulk', { method: 'POST', json: { op: 'delete', filter: { action: 'sum' } } }))
        .status,
    ).toBe(403);
    const page = await signedIn(SECRETS.root);
    expect(await visible(page, '#tabs a[data-page="audit"]')).toBe(true);
    await page.click('#tabs a[data-page="audit"]');
    expect(new URL(page.url()).searchParams.get('view')).toBe('audit');
    await page.locator('#audit-rows tr').first().waitFor();

    /** Each row's cells but the time. */
    const rowsOf = async () => {
      const rows: string[][] = [];
      for (const tr of await page.locator('#audit-rows tr').all())
        rows.push((await tr.locator('td').allTextContents()).slice(1));
      return rows;
    };
    const rows = await rowsOf();
    // Newest first: the refused delete, then what the operate tab did. The dry runs (this one and
    // the bulk bar's count) are reads and not recorded.
    expect(rows.slice(0, 4)).toEqual([
      ['oncall', 'bulk.delete', '–', 'action=sum', '', '403'],
      ['oncall', 'actions.resume', 'sum', '', '', '200'],
      ['oncall', 'actions.pause', 'sum', '', '', '200'],
      ['oncall', 'tasks.retry', expect.stringMatching(/^[0-9a-f-]{36}$/), '', '', '200'],
    ]);

    mkdirSync(SHOTS, { recursive: true });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: `${SHOTS}/audit.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: `${SHOTS}/audit-dark.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    await page.fill('#audit-action', 'actions.pause');
    await page.click('#audit-filters button[type=submit]');
    await expect.poll(async () => (await rowsOf()).map((r) => r[1])).toEqual(['actions.pause']);
    await page.fill('#audit-action', '');
    await page.fill('#audit-token', 'nobody');
    await page.click('#audit-filters button[type=submit]');
    await page.locator('#audit-empty').waitFor({ state: 'visible' });

    // Past a page of 25: Older and Newer move by the cursor.
    for (let i = 0; i < 26; i++)
      expect((await root()(`/actions/page-${i}/pause`, { method: 'POST' })).status).toBe(200);
    await page.fill('#audit-token', 'root');
    await page.click('#audit-filters button[type=submit]');
    await expect.poll(async () => (await rowsOf())[0]?.[2]).toBe('page-25');
    expect(await page.locator('#audit-rows tr').count()).toBe(25);
    await page.click('#audit-older');
    await expect.poll(async () => (await rowsOf()).map((r) => r[2])).toEqual(['page-0']);
    expect(await page.textContent('#audit-page')).toBe('Page 2');
    expect(await page.isDisabled('#audit-older')).toBe(true);
    await page.click('#audit-newer');
    await expect.poll(async () => (await rowsOf())[0]?.[2]).toBe('page-25');

    // An admin has bulk Delete.
    await page.click('#tabs a[data-page="tasks"]');
    await page.locator('#rows tr').first().waitFor();
    await page.check('#select-page');
    expect(await visible(page, '#bulk-delete')).toBe(true);
    await page.context().close();
  });
});
