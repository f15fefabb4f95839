/** Headless Chromium for the dashboard's browser tests (playwright-core, the system's chromium). */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.TASKQ_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
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
