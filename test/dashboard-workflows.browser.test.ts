/**
 * The task panel's dependency graph (views/task-graph.js, issue 12 part 3) in a real headless
 * Chromium against a real service: a diamond A -> (B, C) -> D drawn and followed live through to
 * the end, node links, the failure cascade, and the "+K more" bound. Skipped, with one line on the
 * console, when /usr/bin/chromium is missing, except under CI=true, where it must run.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentFailure } from '../src/core/errors.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { CHROMIUM, chromiumAvailable, chromiumRequired, launchChromium, SHOTS } from './support/browser.js';
import { finished, startTestService, statusOf, type TestService } from './support/service.js';
import { gate } from './support/signals.js';
import { tempDbPath } from './support/temp.js';

const available = chromiumAvailable;
const required = chromiumRequired;
if (!available && !required) console.log(`dashboard workflow browser tests skipped: ${CHROMIUM} not found`);

/** One gate per step name: a `stage` task runs until the test opens its step's gate. */
const gates = new Map<string, ReturnType<typeof gate>>();
const gateOf = (name: string) => {
  const g = gates.get(name) ?? gate();
  gates.set(name, g);
  return g;
};
/** A handler of `action` that runs until the test opens the gate of its task's `data.name`. */
const staged = (action: string): HandlerDefinition => ({
  action,
  handle: async (task) => {
    const name = String(task.data.name);
    await gateOf(name).promise;
    return { step: name };
  },
});
const STAGES = ['stage', 'fetch-video', 'encode-720p', 'encode-1080p', 'publish', 'load', 'report'];
const broken: HandlerDefinition = {
  action: 'extract',
  handle: () => {
    throw new PermanentFailure('source bucket is empty');
  },
};

describe.skipIf(!available && !required)('task graph in Chromium', () => {
  const db = tempDbPath();
  let service: TestService;
  let browser: Browser;
  let page: Page;

  const batch = async (tasks: object[]) => {
    const res = await service.http('/tasks/batch', { method: 'POST', json: { tasks } });
    expect(res.status).toBe(202);
    return res.body.ids as string[];
  };
  const attributes = async (selector: string, name: string) =>
    Promise.all((await page.locator(selector).all()).map((node) => node.getAttribute(name)));
  /** Each drawn neighbour as "id status", in drawing order (left column, then right). */
  const neighbours = async () => {
    const ids = await attributes('#task-graph a.graph-node', 'data-task-id');
    const statuses = await attributes('#task-graph a.graph-node', 'data-status');
    return ids.map((id, i) => `${id} ${statuses[i]}`);
  };
  const centre = () => page.textContent('#task-graph .graph-centre .graph-status');
  const open = async (path: string) => {
    await page.goto(`${service.url}${path}`);
    await expect.poll(() => page.textContent('#live')).toBe('live');
  };
  const shoot = async (name: string) => {
    await page.emulateMedia({ colorScheme: 'light' });
    await page.locator('#detail').screenshot({ path: `${SHOTS}/${name}.png` });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.locator('#detail').screenshot({ path: `${SHOTS}/${name}-dark.png` });
    await page.emulateMedia({ colorScheme: 'light' });
  };

  beforeAll(async () => {
    service = await startTestService({ db: db.path, backoffMs: 0, concurrency: 4 }, [
      ...STAGES.map(staged),
      broken,
    ]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    for (const g of gates.values()) g.open();
    await browser?.close();
    await service?.stop();
    db.cleanup();
  });

  it('draws a diamond A -> (B, C) -> D: D blocked on 2, then live through to completed', async () => {
    const [a, b, c, d] = (await batch([
      { action: 'fetch-video', data: { name: 'a' } },
      { action: 'encode-720p', data: { name: 'b' }, depends_on: [0] },
      { action: 'encode-1080p', data: { name: 'c' }, depends_on: [0] },
      { action: 'publish', data: { name: 'd' }, depends_on: [1, 2] },
    ])) as [string, string, string, string];
    await open(`/dashboard?task=${d}`);
    await expect.poll(centre).toBe('blocked · 2 pending');
    expect(await neighbours()).toEqual([`${b} blocked`, `${c} blocked`]);
    expect(await page.textContent('#task-graph')).toContain('Depends on');

    // B's panel: A upstream, D downstream, B itself blocked on its one dependency.
    await page.click(`#task-graph a.graph-node[data-task-id="${b}"]`);
    await expect.poll(() => new URL(page.url()).searchParams.get('task')).toBe(b);
    await expect.poll(() => page.textContent('#detail-id')).toBe(b);
    await expect.poll(neighbours).toEqual([`${a} running`, `${d} blocked`]);
    expect(await centre()).toBe('blocked · 1 pending');
    expect(await page.textContent('#task-graph a.graph-node[data-task-id="' + d + '"]')).toContain(
      '2 pending',
    );
    await page.goBack();
    await expect.poll(() => page.textContent('#detail-id')).toBe(d);

    // A completes, then B: D's stream pushes it with one dependency left.
    gateOf('a').open();
    await expect.poll(() => statusOf(service.http, b)).toBe('running');
    gateOf('b').open();
    await expect.poll(centre).toBe('blocked · 1 pending');
    await expect.poll(neighbours).toEqual([`${b} completed`, `${c} running`]);
    await shoot('workflows-graph');

    gateOf('c').open();
    gateOf('d').open();
    await expect.poll(centre).toBe('completed');
    await expect.poll(neighbours).toEqual([`${b} completed`, `${c} completed`]);
    expect((await finished(service.http, d)).status).toBe('completed');
  });

  it('shows a failed dependency cascading to its dependents', async () => {
    const [extract, load, report] = (await batch([
      { action: 'extract', data: {} },
      { action: 'load', data: { name: 'load' }, depends_on: [0] },
      { action: 'report', data: { name: 'report' }, depends_on: [1] },
    ])) as [string, string, string];
    expect((await finished(service.http, report)).status).toBe('failed');
    await open(`/dashboard?task=${load}`);
    await expect.poll(centre).toBe('failed');
    expect(await neighbours()).toEqual([`${extract} failed`, `${report} failed`]);
    expect(await page.textContent('#detail-error')).toBe(
      `dependency ${extract} failed: source bucket is empty`,
    );
    await shoot('workflows-cascade');
    await page.click(`#task-graph a.graph-node[data-task-id="${report}"]`);
    await expect
      .poll(() => page.textContent('#detail-error'))
      .toBe(`dependency ${load} failed: dependency ${extract} failed: source bucket is empty`);
  });

  it('draws at most 6 of a side and counts the rest', async () => {
    const ids = await batch([
      { action: 'stage', data: { name: 'fan' } },
      ...Array.from({ length: 10 }, (_, i) => ({
        action: 'stage',
        data: { name: `leaf-${i}` },
        depends_on: [0],
      })),
    ]);
    await open(`/dashboard?task=${ids[0]}`);
    await expect.poll(() => page.locator('#task-graph a.graph-node').count()).toBe(6);
    expect(await page.textContent('#task-graph .graph-more-text')).toBe('+4 more');
    expect(await attributes('#task-graph a.graph-node', 'data-task-id')).toEqual(ids.slice(1, 7));
  });

  it('hides the graph for a task with no neighbours', async () => {
    const [alone] = await batch([{ action: 'stage', data: { name: 'alone' } }]);
    gateOf('alone').open();
    expect((await finished(service.http, alone as string)).status).toBe('completed');
    await open(`/dashboard?task=${alone}`);
    await expect.poll(() => page.textContent('#detail-id')).toBe(alone);
    await expect.poll(() => page.textContent('#detail-status')).toBe('completed');
    expect(await page.isHidden('#task-graph')).toBe(true);
  });
});
