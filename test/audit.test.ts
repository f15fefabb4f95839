/**
 * The audit log on both drivers (queue/audit.ts, api/routes/audit.ts, docs/security.md): an entry
 * for each operator call (pause, resume, retry, cancel, schedule run, bulk with its filter and
 * count, refusals included) with the token's name, none for enqueues, reads or 401s; GET /audit
 * newest first, paged by cursor and filtered by token and action; pruning past the retention.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanupAfterEach, freshDir } from './support/cleanup.js';
import { BOTH_SERVICE_DBS } from './support/drivers.js';
import { startTestApp, type HttpInit, type TestApp } from './support/service.js';

const defer = cleanupAfterEach();
const TOKENS = 'alice:operate:alice-secret-1 root:admin:root-secret-1 ci:enqueue:ci-secret-000';
const as = (secret: string, init: HttpInit = {}): HttpInit => ({
  ...init,
  headers: { ...init.headers, authorization: `Bearer ${secret}` },
});
const ALICE = 'alice-secret-1';
const ROOT = 'root-secret-1';
const CI = 'ci-secret-000';
const LATER = { action: 'later', delay_ms: 3_600_000 };

describe.each(BOTH_SERVICE_DBS)('the audit log on %s', (_name, database, skip) => {
  let app: TestApp;
  beforeAll(async () => {
    if (skip) return;
    const { db, cleanup } = database();
    const schedules = join(
      freshDir(() => {}),
      'schedules.json',
    );
    writeFileSync(schedules, JSON.stringify([{ name: 'nightly', cron: '0 3 * * *', action: 'later' }]));
    app = await startTestApp({ db, tokens: TOKENS, schedules, pollMs: 50 });
    return async () => {
      await app.stop();
      await cleanup();
    };
  });

  const audit = async (query = '') => {
    const res = await app.http(`/audit${query}`, as(ROOT));
    expect(res.status).toBe(200);
    return res.body as { entries: Record<string, unknown>[]; next_cursor: string | null };
  };
  const enqueue = async () => {
    const res = await app.http('/tasks', as(CI, { method: 'POST', json: LATER }));
    expect(res.status).toBe(202);
    return res.body.id as string;
  };

  it.skipIf(skip)('records every operator call with who, what, target and status, newest first', async () => {
    const before = (await audit()).entries.length;
    const id = await enqueue();
    expect((await app.http(`/tasks/${id}`, as(ALICE))).status).toBe(200); // reads are not audited
    expect((await app.http(`/tasks/${id}/cancel`, as(ALICE, { method: 'POST' }))).status).toBe(200);
    expect((await app.http(`/tasks/${id}/retry`, as(ALICE, { method: 'POST' }))).status).toBe(200);
    expect((await app.http(`/tasks/${id}/retry`, as(ALICE, { method: 'POST' }))).status).toBe(409);
    expect((await app.http('/actions/later/pause', as(ALICE, { method: 'POST' }))).status).toBe(200);
    expect((await app.http('/actions/later/resume', as(ALICE, { method: 'POST' }))).status).toBe(200);
    expect((await app.http('/schedules/nightly/run', as(ROOT, { method: 'POST' }))).status).toBe(202);
    expect((await app.http('/actions/later/pause', as(CI, { method: 'POST' }))).status).toBe(403);
    expect((await app.http('/actions/later/pause', { method: 'POST' })).status).toBe(401); // nobody: not recorded

    const { entries } = await audit();
    expect(entries).toHaveLength(before + 7);
    const view = entries
      .slice(0, 7)
      .map((e) => [e.token, e.method, e.route, e.action, e.target, e.status, e.detail]);
    expect(view).toEqual([
      ['ci', 'POST', '/actions/:action/pause', 'actions.pause', 'later', 403, null],
      ['root', 'POST', '/schedules/:name/run', 'schedules.run', 'nightly', 202, null],
      ['alice', 'POST', '/actions/:action/resume', 'actions.resume', 'later', 200, null],
      ['alice', 'POST', '/actions/:action/pause', 'actions.pause', 'later', 200, null],
      ['alice', 'POST', '/tasks/:id/retry', 'tasks.retry', id, 409, null],
      ['alice', 'POST', '/tasks/:id/retry', 'tasks.retry', id, 200, null],
      ['alice', 'POST', '/tasks/:id/cancel', 'tasks.cancel', id, 200, null],
    ]);
    const ids = entries.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    for (const e of entries.slice(0, 7)) expect(Date.parse(String(e.at))).not.toBeNaN();
    // Enqueues are the queue's traffic, not operator acts.
    expect(entries.filter((e) => e.token === 'ci' && e.action !== 'actions.pause')).toEqual([]);
  });

  it.skipIf(skip)(
    'records a bulk operation with its filter and matched count, and a refused delete, not a dry run',
    async () => {
      await Promise.all([enqueue(), enqueue(), enqueue()]);
      const filter = { action: 'later', status: 'queued' };
      const post = (secret: string, body: object) =>
        app.http('/tasks/bulk', as(secret, { method: 'POST', json: body }));
      const dry = await post(ALICE, { op: 'cancel', filter, dry_run: true });
      expect(dry.status).toBe(200);
      const run = await post(ALICE, { op: 'cancel', filter });
      expect(run.status).toBe(202);
      const refused = await post(ALICE, { op: 'delete', filter: { action: 'later' } });
      expect(refused.status).toBe(403);

      const refusedDry = await post(ALICE, { op: 'delete', filter, dry_run: true });
      expect(refusedDry.status).toBe(403);

      const { entries } = await audit('?limit=3');
      // The answered dry run is a read: not there. The refused one is.
      expect(entries.map((e) => [e.token, e.action, e.target, e.status, e.detail])).toEqual([
        ['alice', 'bulk.delete', null, 403, { filter, dry_run: true }],
        ['alice', 'bulk.delete', null, 403, { filter: { action: 'later' }, dry_run: false }],
        [
          'alice',
          'bulk.cancel',
          run.body.operation_id,
          202,
          { filter, dry_run: false, matched: run.body.matched, matched_exact: true },
        ],
      ]);
      const answeredDryRuns = (await audit('?limit=1000')).entries.filter(
        (e) => e.status === 200 && JSON.stringify(e.detail).includes('"dry_run":true'),
      );
      expect(answeredDryRuns).toEqual([]);
      expect(dry.body.matched).toBeGreaterThanOrEqual(3);
      expect(run.body.matched).toBe(dry.body.matched);
    },
  );

  it.skipIf(skip)('pages by cursor without gaps or repeats, and filters by token and action', async () => {
    for (let i = 0; i < 5; i++)
      expect((await app.http(`/actions/paged-${i}/pause`, as(ROOT, { method: 'POST' }))).status).toBe(200);
    const all = (await audit('?limit=1000')).entries.map((e) => e.id);
    const paged: unknown[] = [];
    let cursor: string | null = null;
    do {
      const page = await audit(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.entries.length).toBeLessThanOrEqual(2);
      paged.push(...page.entries.map((e) => e.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(paged).toEqual(all);

    const byRoot = (await audit('?token=root&limit=1000')).entries;
    expect(byRoot.length).toBeGreaterThanOrEqual(6);
    expect(byRoot.every((e) => e.token === 'root')).toBe(true);
    const pauses = (await audit('?token=root&action=actions.pause&limit=3')).entries;
    expect(pauses.map((e) => e.target)).toEqual(['paged-4', 'paged-3', 'paged-2']);
    const byAction = (await audit('?action=actions.pause&limit=1000')).entries;
    expect(new Set(byAction.map((e) => e.token))).toEqual(new Set(['root', 'alice', 'ci']));

    const forged = await app.http('/audit?cursor=bm9wZQ', as(ROOT));
    expect(forged.status).toBe(400);
    expect(forged.body.code).toBe('TQ_ERR_VALIDATION');
    expect((await app.http('/audit?bogus=1', as(ROOT))).status).toBe(400);
    expect((await app.http('/audit', as(ALICE))).body).toEqual({
      code: 'TQ_ERR_FORBIDDEN',
      error: "token 'alice' lacks scope 'admin'",
    });
  });

  it.skipIf(skip)('prunes entries older than --audit-retention and keeps the rest', async () => {
    const now = Date.now();
    const old = { token: 'old', method: 'POST', route: '/x', target: null, detail: null, status: 200 };
    await app.service.driver.insertAuditEntry({
      entry: { ...old, action: 'old.one', at: now - 91 * 86_400_000 },
    });
    await app.service.driver.insertAuditEntry({
      entry: { ...old, action: 'old.two', at: now - 89 * 86_400_000 },
    });
    const before = (await audit('?limit=1000')).entries.length;
    await app.service.pruner!.runOnce();
    const after = (await audit('?limit=1000')).entries;
    expect(after.length).toBe(before - 1);
    expect(after.map((e) => e.action)).toContain('old.two');
    expect(after.map((e) => e.action)).not.toContain('old.one');
  });
});

describe.each(BOTH_SERVICE_DBS)('without tokens on %s', (_name, database, skip) => {
  it.skipIf(skip)('still records operator calls, by nobody', async () => {
    const { db, cleanup } = database();
    const app = await startTestApp({ db });
    defer(async () => {
      await app.stop();
      await cleanup();
    });
    expect((await app.http('/actions/x/pause', { method: 'POST' })).status).toBe(200);
    const { entries } = (await app.http('/audit')).body;
    expect(entries.map((e: Record<string, unknown>) => [e.token, e.action, e.target])).toEqual([
      [null, 'actions.pause', 'x'],
    ]);
  });
});
