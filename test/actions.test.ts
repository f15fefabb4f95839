/**
 * The operator's console on both drivers (docs/operations.md): pausing and resuming an action
 * (claims leave it out from the answer on, in this pool and in a second one on the same
 * database; running tasks finish; other actions go on), GET /actions figures against what the
 * test did, and schedules' pause, resume and run-now, persisted across restarts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { bucketOf, percentileOf, RUN_BUCKET_COLUMNS, RUN_MS_BUCKETS } from '../src/core/actions.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { HandlerRegistry } from '../src/handlers/registry.js';
import { readActions } from '../src/queue/actions.js';
import { TaskQueue } from '../src/queue/queue.js';
import { BOTH_DRIVERS } from './support/drivers.js';
import { newTask } from './support/factories.js';
import { dropSchema, postgresTestUrl, randomSchema, withSchema } from './support/postgres.js';
import { finished, startTestApp, type Http } from './support/service.js';
import { tempDbPath } from './support/temp.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfterEach, freshDir } from './support/cleanup.js';

const LEASE = 10_000;
const defer = cleanupAfterEach();

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** A database for `name`'s nodes: a SQLite file or a PostgreSQL schema of the test database. */
function databaseFor(name: 'sqlite' | 'postgres'): string {
  if (name === 'sqlite') {
    const { path, cleanup } = tempDbPath();
    cleanups.push(async () => cleanup());
    return path;
  }
  const url = postgresTestUrl() as string;
  const schema = randomSchema();
  cleanups.push(() => dropSchema(url, schema));
  return withSchema(url, schema);
}

async function node(db: string, overrides: Record<string, unknown> = {}, handlers: HandlerDefinition[] = []) {
  const app = await startTestApp({ db, pollMs: 50, ...overrides }, handlers);
  cleanups.push(() => app.stop());
  return app;
}

async function enqueue(http: Http, body: object): Promise<string> {
  const res = await http('/tasks', { method: 'POST', json: body });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

/** A handler that runs until the test lets it go. */
function gate(action: string) {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  const started: string[] = [];
  let onStart: () => void = () => {};
  const firstStart = new Promise<void>((resolve) => (onStart = resolve));
  const handler: HandlerDefinition = {
    action,
    handle: async (task) => {
      started.push(task.id);
      onStart();
      await opened;
      return { ok: true };
    },
  };
  return { handler, open, started, firstStart };
}

describe('run-time buckets', () => {
  it('puts a run time in the bucket whose bound holds it and reads percentiles back as bounds', () => {
    expect(RUN_BUCKET_COLUMNS).toHaveLength(RUN_MS_BUCKETS.length + 1);
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(5)).toBe(0);
    expect(bucketOf(6)).toBe(1);
    expect(bucketOf(10_000_000)).toBe(RUN_MS_BUCKETS.length);
    const buckets = RUN_BUCKET_COLUMNS.map(() => 0);
    buckets[bucketOf(3)] = 50; // 50 runs of at most 5 ms
    buckets[bucketOf(700)] = 45; // 45 of at most 1000 ms
    buckets[bucketOf(4000)] = 5; // 5 of at most 5000 ms
    expect(percentileOf(buckets, 0.5)).toBe(5);
    expect(percentileOf(buckets, 0.51)).toBe(1000);
    expect(percentileOf(buckets, 0.95)).toBe(1000);
    expect(percentileOf(buckets, 0.96)).toBe(5000);
    expect(
      percentileOf(
        RUN_BUCKET_COLUMNS.map(() => 0),
        0.5,
      ),
    ).toBeNull();
  });
});

describe.each(BOTH_DRIVERS)('pause and resume on %s', (name, open, skip) => {
  it.skipIf(skip)(
    'leaves a paused action out of every claim, here and in a peer, until resumed',
    async () => {
      const { driver, openPeer, cleanup } = open();
      const peer = await openPeer();
      cleanups.push(async () => {
        await peer.close();
        await driver.close();
        await cleanup();
      });
      await driver.migrate();
      // Listening from the start, so the LISTEN is up before the peer's NOTIFY.
      const heard: number[] = [];
      let onHeard = () => {};
      driver.on('tasksQueued', ({ count }) => {
        heard.push(count);
        onHeard();
      });
      const hears = (count: number) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no tasksQueued of ${count}: ${heard.join()}`)),
            5000,
          );
          onHeard = () => heard.includes(count) && (clearTimeout(timer), resolve());
          onHeard();
        });
      const now = Date.now();
      // The paused action's tasks are first in claim order, so a claim that ignored the pause takes them.
      await driver.insertTasks({
        tasks: [
          newTask({ action: 'held', priority: 5 }, now),
          newTask({ action: 'held', priority: 5 }, now),
          newTask({ action: 'other' }, now),
        ],
        now,
      });
      const pause = await driver.pauseAction({ action: 'held', now });
      expect(pause).toEqual({ action: 'held', pausedAt: now });
      // Idempotent: a second pause keeps the first one's time.
      expect(await driver.pauseAction({ action: 'held', now: now + 5 })).toEqual(pause);
      expect(await peer.listPausedActions()).toEqual([pause]);

      const claim = (d: QueueDriver, owner: string) =>
        d.claimTasks({ owner, limit: 10, now, leaseMs: LEASE });
      expect((await claim(peer, 'peer')).map((t) => t.action)).toEqual(['other']);
      expect(await claim(driver, 'here')).toEqual([]);
      // Under flow-control limits too (the limited claim's own statements).
      const limits = [{ action: 'held', rateLimit: { perSecond: 100, burst: 100 } }];
      expect(await driver.claimTasks({ owner: 'here', limit: 10, now, leaseMs: LEASE, limits })).toEqual([]);
      const keyed = [{ action: 'held', concurrencyPerKey: 1 }];
      expect(await peer.claimTasks({ owner: 'peer', limit: 10, now, leaseMs: LEASE, limits: keyed })).toEqual(
        [],
      );

      // Resuming wakes workers: here at once, and (PostgreSQL) in the peer by NOTIFY.
      await peer.resumeAction({ action: 'held' });
      if (name === 'postgres') await hears(2);
      expect(await driver.listPausedActions()).toEqual([]);
      await peer.resumeAction({ action: 'held' }); // resuming again changes nothing
      expect((await claim(driver, 'here')).map((t) => t.action)).toEqual(['held', 'held']);
    },
  );

  it.skipIf(skip)(
    'over HTTP: claims stop at the answer on two nodes, running tasks finish, others go on, resume runs them',
    async () => {
      const db = databaseFor(name);
      const running = gate('slow');
      const a = await node(db, {}, [running.handler]);
      const b = await node(db, {}, [running.handler]);
      const slowId = await enqueue(a.http, { action: 'slow' });
      await running.firstStart;

      const paused = await a.http('/actions/slow/pause', { method: 'POST' });
      const answeredAt = Date.now();
      expect(paused.status).toBe(200);
      expect(paused.body).toMatchObject({ action: 'slow', paused: true, paused_at: expect.any(String) });
      const again = await b.http('/actions/slow/pause', { method: 'POST' });
      expect(again.body).toEqual(paused.body);

      const waiting = [await enqueue(a.http, { action: 'slow' }), await enqueue(b.http, { action: 'slow' })];
      const other = await enqueue(b.http, { action: 'uppercase', data: { text: 'go' } });
      // Another action goes on while the pause holds, through both nodes' claims.
      expect((await finished(b.http, other)).status).toBe('completed');
      // The running task finishes.
      running.open();
      expect((await finished(a.http, slowId)).status).toBe('completed');
      // Let both nodes' producers claim again (a poll is 50 ms), then nothing of `slow` was taken.
      const later = await enqueue(a.http, { action: 'uppercase', data: { text: 'later' } });
      await finished(a.http, later);
      const otherLater = await enqueue(b.http, { action: 'uppercase', data: { text: 'later' } });
      await finished(b.http, otherLater);
      for (const id of waiting) {
        const task = (await a.http(`/tasks/${id}`)).body;
        expect(task.status).toBe('queued');
        expect(task.claimed_at).toBeNull();
      }
      expect(running.started).toEqual([slowId]);

      const list = (await b.http('/actions')).body.actions.find(
        (x: { action: string }) => x.action === 'slow',
      );
      expect(list).toMatchObject({ paused: true, counts: { queued: 2, completed: 1 } });
      expect(list.oldest_queued_age_ms).toBeGreaterThanOrEqual(0);
      expect(list.oldest_queued_age_ms).toBeLessThan(Date.now() - answeredAt + 1000);

      const resumed = await b.http('/actions/slow/resume', { method: 'POST' });
      expect(resumed.status).toBe(200);
      expect(resumed.body).toEqual({ action: 'slow', paused: false, paused_at: null });
      for (const id of waiting) expect((await finished(a.http, id)).status).toBe('completed');
      const after = (await a.http('/actions')).body.actions.find(
        (x: { action: string }) => x.action === 'slow',
      );
      expect(after).toMatchObject({ paused: false, paused_at: null, counts: { queued: 0, completed: 3 } });
    },
  );
});

describe.each(BOTH_DRIVERS)('GET /actions figures on %s', (_name, open, skip) => {
  it.skipIf(skip)('counts, windows, failure rate, p50/p95 and queue age match what was done', async () => {
    const { driver, cleanup } = open();
    cleanups.push(async () => {
      await driver.close();
      await cleanup();
    });
    await driver.migrate();
    const registry = new HandlerRegistry(undefined, false);
    registry.register({ action: 'capped', handle: async () => null, concurrencyPerKey: 2, concurrency: 3 });
    const queue = new TaskQueue({
      driver,
      registry,
      defaultMaxAttempts: 3,
      rateLimits: new Map([['report', { perSecond: 20, burst: 5 }]]),
    });
    const now = Date.now();
    const minute = 60_000;
    // Finishes at three times: now, 10 minutes ago (only in the hour) and 2 hours ago (in neither).
    const finishAt = async (at: number, runs: { ms: number; ok: boolean }[]) => {
      const inserted = await driver.insertTasks({
        tasks: runs.map(() => newTask({ action: 'report', maxAttempts: 1 }, at)),
        now: at,
      });
      const claimed = await driver.claimTasks({ owner: 'w', limit: runs.length, now: at, leaseMs: LEASE });
      expect(claimed).toHaveLength(runs.length);
      const byId = new Map(inserted.map((r, i) => [r.task.id, runs[i]!]));
      const ref = (t: (typeof claimed)[number]) => ({
        id: t.id,
        seq: t.seq,
        owner: 'w',
        attempt: t.attempts,
      });
      const done = claimed.map((t) => ({ t, run: byId.get(t.id)! }));
      const end = at + Math.max(...runs.map((r) => r.ms));
      await driver.completeTasks({
        completions: done
          .filter((d) => d.run.ok)
          .map((d) => ({ ...ref(d.t), result: null, startedAt: end - d.run.ms })),
        now: end,
      });
      await driver.failTasks({
        failures: done
          .filter((d) => !d.run.ok)
          .map((d) => ({
            ...ref(d.t),
            error: 'boom',
            outcome: 'failed' as const,
            startedAt: end - d.run.ms,
          })),
        now: end,
      });
    };
    // Now: 8 fast completions (3 ms), 1 slow (800 ms), 1 failure (800 ms).
    await finishAt(now - 900, [
      ...Array.from({ length: 8 }, () => ({ ms: 3, ok: true })),
      { ms: 800, ok: true },
      { ms: 800, ok: false },
    ]);
    await finishAt(now - 10 * minute, [
      { ms: 20, ok: true },
      { ms: 20, ok: false },
    ]);
    await finishAt(now - 120 * minute, [{ ms: 20, ok: false }]);
    // Queued: two of `report`, the older 30 s old, and one that waits behind a pause.
    await driver.insertTasks({ tasks: [newTask({ action: 'report' }, now - 30_000)], now: now - 30_000 });
    await driver.insertTasks({ tasks: [newTask({ action: 'report' }, now - 1000)], now: now - 1000 });
    await queue.pauseAction('idle');

    const { actions } = await readActions(
      queue,
      [{ name: 'nightly', cron: '0 3 * * *', timezone: 'UTC', action: 'report', data: {} }],
      now,
    );
    const report = actions.find((a) => a.action === 'report')!;
    expect(report.counts).toEqual({
      queued: 2,
      running: 0,
      completed: 10,
      failed: 3,
      cancelled: 0,
      blocked: 0,
    });
    expect(report.last5m).toMatchObject({ minutes: 5, completed: 9, failed: 1, failureRate: 0.1 });
    expect(report.last5m.completedPerMinute).toBe(1.8);
    expect(report.last60m).toMatchObject({ minutes: 60, completed: 10, failed: 2 });
    expect(report.last60m.failureRate).toBeCloseTo(2 / 12, 4);
    // 12 runs in the hour: 8 of at most 5 ms, 2 of 20 ms (<= 25), 2 of 800 ms (<= 1000).
    expect(report.runMsP50).toBe(5);
    expect(report.runMsP95).toBe(1000);
    expect(report.oldestQueuedAgeMs).toBe(30_000);
    expect(report.rateLimit).toEqual({ perSecond: 20, burst: 5 });
    expect(report.schedules).toEqual(['nightly']);
    expect(report.registered).toBe(false);
    expect(report.paused).toBe(false);

    const capped = actions.find((a) => a.action === 'capped')!;
    expect(capped).toMatchObject({ registered: true, concurrencyPerKey: 2, concurrency: 3, total: 0 });
    expect(capped.runMsP50).toBeNull();
    expect(capped.last60m.failureRate).toBeNull();
    expect(actions.find((a) => a.action === 'idle')).toMatchObject({ paused: true, total: 0 });
    // Built-ins are listed as registered.
    expect(actions.find((a) => a.action === 'uppercase')?.registered).toBe(true);
  });
});

describe.each(BOTH_DRIVERS)('schedules in the console on %s', (name, _open, skip) => {
  function schedulesFile(): string {
    const file = join(freshDir(defer), 'schedules.json');
    writeFileSync(
      file,
      JSON.stringify([
        { name: 'tick', cron: '* * * * * *', action: 'uppercase', data: { text: 'tick' } },
        { name: 'nightly', cron: '0 3 * * *', action: 'sum', data: { numbers: [1, 2] } },
      ]),
    );
    return file;
  }

  it.skipIf(skip)('pauses, resumes and runs now, persisted across a restart', async () => {
    const db = databaseFor(name);
    const schedules = schedulesFile();
    const a = await node(db, { schedules });
    const scheduler = a.service.scheduler!;
    await scheduler.stop(); // driven by hand below

    const listed = (await a.http('/schedules')).body.schedules;
    expect(listed.map((s: { name: string }) => s.name)).toEqual(['tick', 'nightly']);
    expect(listed[0]).toMatchObject({
      paused: false,
      paused_at: null,
      last_run_at: null,
      last_task_id: null,
    });

    const paused = await a.http('/schedules/tick/pause', { method: 'POST' });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ name: 'tick', paused: true, paused_at: expect.any(String) });
    const start = Date.now();
    await scheduler.check(start + 2000);
    expect(await a.service.driver.listTasks({ action: 'uppercase', limit: 10 })).toEqual([]);

    // Run now, paused or not; the same Idempotency-Key queues it once.
    const headers = { 'idempotency-key': 'deploy-42' };
    const run = await a.http('/schedules/nightly/run', { method: 'POST', headers });
    expect(run.status).toBe(202);
    expect(run.body).toMatchObject({ schedule: 'nightly', inserted: true, task: { status: 'queued' } });
    const replay = await a.http('/schedules/nightly/run', { method: 'POST', headers });
    expect(replay.status).toBe(200);
    expect(replay.body.task.id).toBe(run.body.task.id);
    const other = await a.http('/schedules/nightly/run', { method: 'POST' });
    expect(other.status).toBe(202);
    expect(other.body.task.id).not.toBe(run.body.task.id);
    const task = (await a.http(`/tasks/${run.body.task.id}`)).body;
    expect(task).toMatchObject({ action: 'sum', data: { numbers: [1, 2] } });
    expect((await finished(a.http, run.body.task.id)).result).toEqual({ output: 3 });

    // Another node (a restart) sees the pause and the last run.
    const b = await node(db, { schedules });
    await b.service.scheduler!.stop();
    const seen = (await b.http('/schedules')).body.schedules;
    expect(seen[0]).toMatchObject({ name: 'tick', paused: true });
    expect(seen[1]).toMatchObject({ name: 'nightly', last_task_id: other.body.task.id });
    expect(Date.parse(seen[1].last_run_at)).toBeGreaterThanOrEqual(start);
    await b.service.scheduler!.check(start + 3000);
    expect(await b.service.driver.listTasks({ action: 'uppercase', limit: 10 })).toEqual([]);

    const resumed = await b.http('/schedules/tick/resume', { method: 'POST' });
    expect(resumed.body).toMatchObject({ name: 'tick', paused: false, paused_at: null });
    await scheduler.check(start + 4000);
    const ticks = await a.service.driver.listTasks({ action: 'uppercase', limit: 10 });
    expect(ticks.length).toBeGreaterThanOrEqual(1);
    const state = (await a.http('/schedules')).body.schedules[0];
    expect(state.last_task_id).toBe(ticks[0]!.id);

    for (const path of ['/schedules/nope/pause', '/schedules/nope/resume', '/schedules/nope/run']) {
      const res = await a.http(path, { method: 'POST' });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('TQ_ERR_NOT_FOUND');
    }
  });
});

describe('bad input', () => {
  it('answers 400 with a code for a bad action name, never a 5xx', async () => {
    const db = databaseFor('sqlite');
    const { http } = await node(db);
    for (const action of ['bad%20name', 'x'.repeat(200), 'a%00b']) {
      const res = await http(`/actions/${action}/pause`, { method: 'POST' });
      expect(res.status, action).toBe(400);
      expect(res.body.code).toBe('TQ_ERR_VALIDATION');
    }
    const long = await http('/schedules/nightly/run', {
      method: 'POST',
      headers: { 'idempotency-key': 'k'.repeat(300) },
    });
    expect(long.status).toBe(400);
  });
});
