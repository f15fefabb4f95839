/**
 * The browser tests' harness: headless Chromium (playwright-core, /usr/bin/chromium or
 * TASKQ_CHROMIUM), where screenshots go, and signing a page in to a service's dashboard. A suite
 * runs when Chromium is there, and must under CI=true.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { HandlerDefinition } from '../../src/handlers/handler.js';

export const CHROMIUM = process.env.TASKQ_CHROMIUM ?? '/usr/bin/chromium';
/** UPDATE_SCREENSHOTS=1 writes the docs' pictures; otherwise they go to test-results/ (ignored by git). */
export const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? 'docs/screenshots' : 'test-results/screenshots';
export const chromiumAvailable = existsSync(CHROMIUM);
export const chromiumRequired = process.env.CI === 'true';

export function launchChromium(): Promise<Browser> {
  if (!chromiumAvailable) throw new Error(`CI=true but ${CHROMIUM} is missing: install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--no-first-run',
    ],
  });
}

/** Opens the dashboard, types the token into its sign-in form and waits for the live stream. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/dashboard`);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#login-token', token);
  await page.click('#login-form button[type=submit]');
  await page.locator('#live[data-state="on"]').waitFor({ timeout: 10_000 });
}

/** A handler that fails while `failing` is true, so a test can retry its tasks into success. */
export function switchableFailure(action = 'flaky') {
  const state = {
    failing: true,
    definition: {
      action,
      handle: () => {
        if (state.failing) throw new Error('the upstream service answered 503');
        return { ok: true };
      },
    } satisfies HandlerDefinition,
  };
  return state;
}
