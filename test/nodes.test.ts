/**
 * Nodes (issue 11 part 4) on both drivers: a node registers and heartbeats, is live while its
 * heartbeats come, gone when it stops or misses three, pruned after an hour (injected clock);
 * GET /nodes lists them, a running task names its node, and a backlog with no live worker is a
 * warning.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { QueueDriver } from '../src/drivers/driver.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { NODE_KEEP_MS, NodeRegistry, nodesReport, type NodeActivity } from '../src/queue/nodes.js';
import { BOTH_DRIVERS, BOTH_SERVICE_DBS } from './support/drivers.js';
import { newTask } from './support/factories.js';
import { eventually, startTestApp, type TestApp } from './support/service.js';

const T0 = Date.UTC(2026, 0, 1);
const HEARTBEAT_MS = 1000;

describe.each(BOTH_DRIVERS)('nodes in the %s driver', (_name, open, skip) => {
  let driver: QueueDriver;
  let cleanup: () => Promise<void>;
  afterEach(async () => {
    await driver?.close();
    await cleanup?.();
  });

  let clock = T0;
  function registry(id: string, role: 'all' | 'api' | 'worker', activity?: () => NodeActivity) {
    return new NodeRegistry({
      driver,
      info: {
        id,
        host: 'host-1',
        pid: 42,
        role,
        version: '9.9.9',
        startedAt: clock,
        heartbeatMs: HEARTBEAT_MS,
        concurrency: role === 'api' ? 0 : 4,
      },
      activity,
      now: () => clock,
      onError: (err) => {
        throw err;
      },
    });
  }
  const statusOf = async () =>
    Object.fromEntries((await nodesReport(driver, clock)).nodes.map((n) => [n.id, n.live ? 'live' : 'gone']));

  it.skipIf(skip)(
    'a node is live while it heartbeats, gone after three missed beats or a stop, pruned after an hour',
    async () => {
      ({ driver, cleanup } = open());
      await driver.migrate();
      clock = T0;
      const worker = registry('w1', 'worker', () => ({ running: 2, buffered: 1, tasks: ['t1', 't2'] }));
      const api = registry('a1', 'api');
      await worker.start({ ownTimer: false });
      await api.start({ ownTimer: false });
      const first = (await nodesReport(driver, clock)).nodes.find((n) => n.id === 'w1');
      expect(first).toMatchObject({
        id: 'w1',
        host: 'host-1',
        pid: 42,
        role: 'worker',
        version: '9.9.9',
        startedAt: T0,
        heartbeatAt: T0,
        heartbeatMs: HEARTBEAT_MS,
        concurrency: 4,
        running: 2,
        buffered: 1,
        tasks: ['t1', 't2'],
        stoppedAt: null,
        live: true,
      });
      expect(await statusOf()).toEqual({ w1: 'live', a1: 'live' });

      // The worker keeps beating; the API node falls silent for more than three periods.
      clock = T0 + 3 * HEARTBEAT_MS + 1;
      await worker.beat();
      expect(await statusOf()).toEqual({ w1: 'live', a1: 'gone' });

      // A graceful stop is gone at once.
      await worker.stop();
      expect(await statusOf()).toEqual({ w1: 'gone', a1: 'gone' });

      // An hour later both are pruned, by the next heartbeat of any node.
      clock = T0 + 3 * HEARTBEAT_MS + 2 + NODE_KEEP_MS;
      const late = registry('w2', 'all');
      await late.start({ ownTimer: false });
      expect(await statusOf()).toEqual({ w2: 'live' });
    },
  );

  it.skipIf(skip)('warns of queued tasks while no live node runs workers', async () => {
    ({ driver, cleanup } = open());
    await driver.migrate();
    clock = T0;
    expect((await nodesReport(driver, clock)).warning).toBeNull(); // nothing queued
    await driver.insertTasks({ tasks: [newTask({}, T0), newTask({}, T0)], now: T0 });
    const api = registry('a1', 'api');
    await api.start({ ownTimer: false });
    expect((await nodesReport(driver, clock)).warning).toEqual({
      code: 'no_live_worker',
      message: '2 tasks are queued and no live worker node is running: they wait until one starts',
      queued: 2,
    });
    const worker = registry('w1', 'worker');
    await worker.start({ ownTimer: false });
    expect((await nodesReport(driver, clock)).warning).toBeNull();
    clock += 3 * HEARTBEAT_MS + 1; // the worker goes silent
    await api.beat();
    expect((await nodesReport(driver, clock)).warning?.queued).toBe(2);
  });
});

/** Runs until its signal aborts. */
const blocking: HandlerDefinition = {
  action: 'block',
  handle: (_task, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)),
};

describe.each(BOTH_SERVICE_DBS)('GET /nodes on %s', (_name, database, skip) => {
  let apps: TestApp[] = [];
  let cleanup: () => Promise<void> = async () => {};
  afterEach(async () => {
    for (const app of apps.reverse()) await app.stop();
    apps = [];
    await cleanup();
  });

  it.skipIf(skip)('lists the node, the task it runs, and a running task names its node', async () => {
    const { db, cleanup: drop } = database();
    cleanup = drop;
    const app = await startTestApp(db === undefined ? {} : { db }, [blocking]);
    apps.push(app);
    const { http, service } = app;
    const started = new Promise((resolve) => service.pool?.once('taskStarted', resolve));
    const id = (await http('/tasks', { method: 'POST', json: { action: 'block' } })).body.id as string;
    await started;
    await service.node.beat();
    const task = (await http(`/tasks/${id}`)).body;
    expect(task.node).toBe(service.node.id);
    const res = await http('/nodes');
    expect(res.status).toBe(200);
    expect(res.body.warning).toBeNull();
    expect(res.body.live).toBe(1);
    expect(res.body.nodes).toEqual([
      expect.objectContaining({
        id: service.node.id,
        pid: process.pid,
        role: 'all',
        status: 'live',
        concurrency: 2,
        running: 1,
        tasks: [id],
        stopped_at: null,
      }),
    ]);
    await http(`/tasks/${id}/cancel`, { method: 'POST' });
  });

  it.skipIf(skip)(
    'an API-only node with a backlog shows the no-worker warning; a stopped node shows gone',
    async () => {
      const { db: given, cleanup: drop } = database();
      cleanup = drop;
      // Both nodes share one database: the SQLite file of the first, or the schema.
      const api = await startTestApp({ role: 'api', ...(given === undefined ? {} : { db: given }) });
      apps.push(api);
      const db = given ?? (api.service.driver.description.replace(/^sqlite /, '') as string);
      await api.service.node.beat();
      await api.http('/tasks', { method: 'POST', json: { action: 'uppercase', data: { text: 'x' } } });
      const warned = (await api.http('/nodes')).body;
      expect(warned.warning).toMatchObject({ code: 'no_live_worker', queued: 1 });
      expect(warned.nodes.map((n: { role: string; status: string }) => [n.role, n.status])).toEqual([
        ['api', 'live'],
      ]);

      const worker = await startTestApp({ role: 'worker', db });
      await eventually(async () => (await api.http('/nodes')).body.warning === null);
      await worker.stop();
      const after = (await api.http('/nodes')).body;
      const gone = after.nodes.find((n: { id: string }) => n.id === worker.service.node.id);
      expect(gone).toMatchObject({ role: 'worker', status: 'gone', stopped_at: expect.any(String) });
    },
  );
});
