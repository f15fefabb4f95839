/**
 * The filter grammar and bulk operations, on both drivers against real databases: every filter
 * of GET /tasks (and its scan window), POST /tasks/bulk dry runs, real runs, resubmissions and
 * Idempotency-Keys, an operation taken over after its node died (lease expired on an injected
 * clock), progress over server-sent events, and the 400s of the grammar.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import { IDS_MAX } from '../src/core/filter.js';
import type { NewTask, TaskStatus } from '../src/core/task.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import { TaskqNode } from '../src/service.js';
import { OperationRunner } from '../src/worker/operation-runner.js';
import { BOTH_DRIVERS } from './support/drivers.js';
import { newTask } from './support/factories.js';

interface Node {
  service: TaskqNode;
  driver: QueueDriver;
  /** GET/POST through inject(); the parsed JSON body. */
  http: (
    path: string,
    init?: { method?: string; json?: unknown; headers?: Record<string, string> },
  ) => Promise<{ status: number; body: Record<string, unknown> & { tasks?: { id: string }[] } }>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const logger = pino({ level: 'silent' });

/** Tasks as the test wants them: queued, or taken to a finished status through the driver. */
async function seed(
  driver: QueueDriver,
  specs: { status?: TaskStatus; error?: string; task?: Partial<NewTask> }[],
  now = Date.now(),
): Promise<string[]> {
  const inserted = await driver.insertTasks({ tasks: specs.map((s) => newTask(s.task, now)), now });
  for (const [i, spec] of specs.entries()) {
    const { task } = inserted[i]!;
    const status = spec.status ?? 'queued';
    if (status === 'queued') continue;
    // Claim exactly this task: everything older is claimed and given back around it.
    const [claimed] = await driver.claimTasks({
      owner: 'seed',
      limit: 1,
      now,
      leaseMs: 60_000,
      excludeActions: [],
    });
    if (claimed?.id !== task.id) throw new Error('seed claims in insertion order: seed queued tasks last');
    const lease = { id: task.id, seq: task.seq, owner: 'seed', attempt: claimed.attempts };
    if (status === 'completed') await driver.completeTasks({ completions: [{ ...lease, result: 1 }], now });
    else if (status === 'failed' || status === 'cancelled')
      await driver.failTasks({ failures: [{ ...lease, error: spec.error ?? 'boom', outcome: status }], now });
  }
  return inserted.map((r) => r.task.id);
}

describe.each(BOTH_DRIVERS)('%s', (_name, open, skip) => {
  async function node(overrides: Record<string, unknown> = {}): Promise<Node> {
    const isolated = await open();
    const config = resolveConfig(
      { port: 0, host: '127.0.0.1', logLevel: 'silent', role: 'api', db: './unused.db', ...overrides },
      {},
    );
    const service = await TaskqNode.create({ config, logger, driver: isolated.driver });
    cleanups.push(async () => {
      await service.stop();
      await isolated.cleanup();
    });
    await service.app.ready();
    const http: Node['http'] = async (path, init = {}) => {
      const res = await service.app.inject({
        method: (init.method ?? 'GET') as 'GET',
        url: path,
        headers: {
          ...(init.json === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(init.json === undefined ? {} : { payload: JSON.stringify(init.json) }),
      });
      return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
    };
    return { service, driver: isolated.driver, http };
  }

  const ids = (body: { tasks?: { id: string }[] }) => (body.tasks ?? []).map((t) => t.id);

  describe.skipIf(skip)('GET /tasks filters', () => {
    it('filters by status, action, a status with its action index, id prefix and whole ids', async () => {
      const { driver, http } = await node();
      const [f1, c1, f2, q1, q2] = await seed(driver, [
        { status: 'failed', task: { action: 'mail' } },
        { status: 'completed', task: { action: 'mail' } },
        { status: 'failed', task: { action: 'sms' } },
        { task: { action: 'mail' } },
        { task: { action: 'sms' } },
      ]);
      expect(ids((await http('/tasks?status=failed')).body)).toEqual([f2, f1]);
      expect(ids((await http('/tasks?action=mail')).body)).toEqual([q1, c1, f1]);
      const failedMail = await http('/tasks?status=failed&action=mail');
      expect(failedMail.body).toMatchObject({ scans: false, next_cursor: null });
      expect(ids(failedMail.body)).toEqual([f1]);
      // On SQLite queued tasks of one action have no (action, seq) index: a bounded scan, and it
      // says so; PostgreSQL's key index holds every status (its migration 0014).
      const queuedSms = await http('/tasks?status=queued&action=sms');
      expect(queuedSms.body.scans).toBe(!driver.capabilities.actionIndexedStatuses.includes('queued'));
      expect(ids(queuedSms.body)).toEqual([q2]);
      const byPrefix = await http(`/tasks?id=${q1!.slice(0, 8)}`);
      expect(byPrefix.body.scans).toBe(true);
      expect(ids(byPrefix.body)).toContain(q1);
      const whole = await http(`/tasks?id=${q1},${f1!.toUpperCase()}`);
      expect(whole.body.scans).toBe(false);
      expect(ids(whole.body)).toEqual([q1, f1]);
      expect(ids((await http(`/tasks?id=${q1}&status=failed`)).body)).toEqual([]);
    });

    it('filters by data fields, error text and created/finished times', async () => {
      const { driver, http } = await node();
      const t0 = Date.parse('2026-01-01T00:00:00Z');
      const [a] = await seed(
        driver,
        [
          {
            status: 'failed',
            error: 'SMTP timeout after 30 s',
            task: { data: { user_id: 42, user: { plan: 'pro' } } },
          },
        ],
        t0,
      );
      const [b] = await seed(
        driver,
        [{ status: 'completed', task: { data: { user_id: '42', flag: true } } }],
        t0 + 3_600_000,
      );
      const [c] = await seed(
        driver,
        [{ task: { data: { user_id: 7, note: 'hello world' } } }],
        t0 + 7_200_000,
      );
      expect(ids((await http('/tasks?data.user_id=42')).body)).toEqual([a]);
      expect(ids((await http('/tasks?data.user_id=%2242%22')).body)).toEqual([b]);
      expect(ids((await http('/tasks?data.user.plan=pro')).body)).toEqual([a]);
      expect(ids((await http('/tasks?data.flag=true')).body)).toEqual([b]);
      expect(ids((await http('/tasks?data.note=hello%20world')).body)).toEqual([c]);
      expect(ids((await http('/tasks?data.user_id=42&data.user.plan=basic')).body)).toEqual([]);
      expect(ids((await http('/tasks?error=timeout')).body)).toEqual([a]);
      expect(ids((await http('/tasks?error=Timeout')).body)).toEqual([]); // case-sensitive
      const iso = (ms: number) => encodeURIComponent(new Date(ms).toISOString());
      expect(ids((await http(`/tasks?created_after=${iso(t0 + 1)}`)).body)).toEqual([c, b]);
      expect(ids((await http(`/tasks?created_before=${t0 + 3_600_000}`)).body)).toEqual([a]);
      const finished = await http(
        `/tasks?finished_after=${iso(t0 + 1)}&finished_before=${iso(t0 + 7_200_000)}`,
      );
      expect(ids(finished.body)).toEqual([b]);
      expect(finished.body.scans).toBe(true);
    });

    it('a scanning page reads at most one window and its cursor continues below it', async () => {
      const { driver, service } = await node();
      const now = Date.now();
      const spread = Array.from({ length: 30 }, (_, i) => ({
        task: { data: { n: i % 10 === 0 ? 'hit' : 'miss' } },
      }));
      const all = await seed(driver, spread, now);
      const hits = all.filter((_, i) => i % 10 === 0).reverse();
      // a window of 7 rows: the three hits are found over several pages, none of which reads more
      const seen: string[] = [];
      let cursor: number | undefined;
      let pages = 0;
      for (;;) {
        const page = await driver.findTasks({
          filter: { data: [{ path: ['n'], json: '"hit"' }] },
          limit: 5,
          beforeSeq: cursor,
          scanWindow: 7,
        });
        pages++;
        expect(page.scans).toBe(true);
        seen.push(...page.tasks.map((t) => t.id));
        if (page.continueBelow === null) break;
        cursor = page.continueBelow;
      }
      expect(seen).toEqual(hits);
      expect(pages).toBe(Math.ceil(30 / 7));
      // through the queue, the default window holds the whole table: one page
      const page = await service.queue.list({
        filter: { data: [{ path: ['n'], json: '"hit"' }] },
        limit: 10,
      });
      expect(page.tasks.map((t) => t.id)).toEqual(hits);
      expect(page.nextCursor).toBeNull();
    });

    it('answers 400 with a code for every bad filter', async () => {
      const { http } = await node();
      for (const query of [
        'status=done',
        'stauts=failed',
        'data.=1',
        'data.a..b=1',
        'id=xyz',
        'id=0f94,abc',
        'created_after=yesterday',
        'created_after=2026-02-01T00:00:00Z&created_before=2026-01-01T00:00:00Z',
        'error=',
      ]) {
        const res = await http(`/tasks?${query}`);
        expect(res.status, query).toBe(400);
        expect(res.body.code, query).toBe('TQ_ERR_VALIDATION');
        expect(res.body.error, query).toEqual(expect.any(String));
      }
      const typo = await http('/tasks?stauts=failed');
      expect(typo.body.error).toContain('did you mean "status"');
    });
  });

  describe.skipIf(skip)('POST /tasks/bulk', () => {
    it('a dry run counts, from the counters or within a window, and changes nothing', async () => {
      const { driver, http } = await node();
      await seed(driver, [
        { status: 'failed', task: { action: 'mail', data: { tenant: 'a' } } },
        { status: 'failed', task: { action: 'mail', data: { tenant: 'b' } } },
        { status: 'completed', task: { action: 'mail' } },
      ]);
      const dry = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'retry', filter: { status: 'failed' }, dry_run: true },
      });
      expect(dry).toMatchObject({ status: 200, body: { matched: 2, matched_exact: true, scans: false } });
      const byData = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'retry', filter: { status: 'failed', 'data.tenant': 'b' }, dry_run: true },
      });
      expect(byData.body).toMatchObject({ matched: 1, matched_exact: true, scans: true });
      expect((await driver.countTasks()).byStatus.failed).toBe(2);
    });

    it('retries, cancels and deletes in the background; a resubmission answers the same operation', async () => {
      const { driver, http, service } = await node();
      const [f1, f2, done, q1] = await seed(driver, [
        { status: 'failed', task: { action: 'mail' } },
        { status: 'cancelled', task: { action: 'mail' } },
        { status: 'completed', task: { action: 'mail' } },
        { task: { action: 'mail', runAt: Date.now() + 3_600_000 } },
      ]);
      const body = { op: 'retry', filter: { action: 'mail' } };
      const first = await http('/tasks/bulk', { method: 'POST', json: body });
      expect(first).toMatchObject({
        status: 202,
        body: { matched: 4, matched_exact: true, status: 'running' },
      });
      const again = await http('/tasks/bulk', { method: 'POST', json: body });
      expect(again).toMatchObject({ status: 200, body: { operation_id: first.body.operation_id } });
      await service.operations.runOnce();
      const op = await http(`/operations/${String(first.body.operation_id)}`);
      expect(op.body).toMatchObject({
        status: 'completed',
        op: 'retry',
        matched: 4,
        done: 2,
        skipped: 2,
        errors: 0,
      });
      expect(op.body.filter).toEqual({ action: 'mail' });
      for (const id of [f1, f2]) expect((await driver.getTask({ id: id! }))?.status).toBe('queued');
      expect((await driver.getTask({ id: done! }))?.status).toBe('completed');
      // finished: the same request is a new operation, which finds nothing left to retry
      const later = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'retry', filter: { status: 'failed', action: 'mail' } },
      });
      expect(later.status).toBe(202);

      const cancel = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'cancel', filter: { status: 'queued' } },
      });
      await service.operations.runOnce();
      expect((await http(`/operations/${String(cancel.body.operation_id)}`)).body).toMatchObject({
        done: 3,
        skipped: 0,
      });
      expect((await driver.getTask({ id: q1! }))?.status).toBe('cancelled');

      const del = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'delete', filter: { action: 'mail' } },
      });
      await service.operations.runOnce();
      expect((await http(`/operations/${String(del.body.operation_id)}`)).body).toMatchObject({
        done: 4,
        status: 'completed',
      });
      expect(await driver.getTask({ id: f1! })).toBeNull();
      expect((await driver.countTasks()).byStatus).toMatchObject({ queued: 0, cancelled: 0, completed: 0 });
    });

    it('an Idempotency-Key answers the first operation, and a different request under it 409', async () => {
      const { driver, http } = await node();
      await seed(driver, [{ status: 'failed' }]);
      const headers = { 'idempotency-key': 'retry-all-1' };
      const first = await http('/tasks/bulk', { method: 'POST', json: { op: 'retry', filter: {} }, headers });
      expect(first.status).toBe(202);
      const same = await http('/tasks/bulk', { method: 'POST', json: { op: 'retry', filter: {} }, headers });
      expect(same.body.operation_id).toBe(first.body.operation_id);
      const other = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'delete', filter: {} },
        headers,
      });
      expect(other).toMatchObject({ status: 409, body: { code: 'TQ_ERR_CONFLICT' } });
    });

    it('answers 400 for a bad op, filter or body, and 404 for an unknown operation', async () => {
      const { http } = await node();
      for (const json of [
        { op: 'purge', filter: {} },
        { op: 'retry' },
        { op: 'retry', filter: { status: 'nope' } },
        { op: 'retry', filter: { 'data.x': { nested: 1 } } },
        { op: 'retry', filter: { bogus: 1 } },
        { op: 'retry', filter: {}, extra: true },
      ]) {
        const res = await http('/tasks/bulk', { method: 'POST', json });
        expect(res.status, JSON.stringify(json)).toBe(400);
        expect(res.body.code).toBe('TQ_ERR_VALIDATION');
      }
      const missing = await http('/operations/00000000-0000-4000-8000-000000000000');
      expect(missing).toMatchObject({ status: 404, body: { code: 'TQ_ERR_NOT_FOUND' } });
    });

    it('a node that dies mid-operation leaves it to another, which carries on from its cursor', async () => {
      const { driver, service } = await node();
      const seeded = await seed(
        driver,
        Array.from({ length: 25 }, () => ({ status: 'failed' as const })),
      );
      const submitted = await service.queue.bulk.submit({ op: 'retry', filter: { status: 'failed' } });
      if (!('operation' in submitted)) throw new Error('not stored');
      const id = submitted.operation.id;
      let clock = Date.now();
      const leaseMs = 10_000;
      // node A takes the lease, does one step of 10, and dies (no more steps, lease not released)
      expect((await driver.claimOperation({ owner: 'a', now: clock, leaseMs }))?.id).toBe(id);
      const afterA = await driver.stepOperation({ id, owner: 'a', now: clock, leaseMs, chunk: 10 });
      expect(afterA).toMatchObject({ done: 10, status: 'running' });
      const b = new OperationRunner({
        driver,
        bulk: service.queue.bulk,
        logger,
        owner: 'b',
        chunk: 10,
        leaseMs,
        now: () => clock,
      });
      await b.runOnce(); // the lease is A's still: B takes nothing
      expect((await driver.getOperation({ id }))?.done).toBe(10);
      clock += leaseMs + 1;
      await b.runOnce();
      const op = await driver.getOperation({ id });
      expect(op).toMatchObject({
        status: 'completed',
        done: 25,
        skipped: 0,
        matched: 25,
        matchedExact: true,
      });
      // A wakes up: its lease is gone, its step changes nothing
      expect(await driver.stepOperation({ id, owner: 'a', now: clock, leaseMs, chunk: 10 })).toBeNull();
      for (const taskId of seeded) expect((await driver.getTask({ id: taskId }))?.attempts).toBe(0);
      expect((await driver.countTasks()).byStatus).toMatchObject({ failed: 0, queued: 25 });
    });

    it('a graceful stop gives the lease up after its step, and another node carries on at once', async () => {
      const { driver, service } = await node();
      await seed(
        driver,
        Array.from({ length: 25 }, () => ({ status: 'failed' as const })),
      );
      const submitted = await service.queue.bulk.submit({ op: 'retry', filter: { status: 'failed' } });
      if (!('operation' in submitted)) throw new Error('not stored');
      const id = submitted.operation.id;
      const clock = Date.now(); // never moves: only a released lease lets B in
      const runner = (owner: string) =>
        new OperationRunner({
          driver,
          bulk: service.queue.bulk,
          logger,
          owner,
          chunk: 10,
          leaseMs: 60_000,
          now: () => clock,
        });
      const a = runner('a');
      let stopping: Promise<void> | undefined;
      a.once('stepped', () => (stopping = a.stop())); // stop after the first step
      await a.runOnce();
      await stopping;
      expect(await driver.getOperation({ id })).toMatchObject({
        done: 10,
        status: 'running',
        leaseOwner: null,
        leaseExpiresAt: null,
      });
      await runner('b').runOnce();
      expect(await driver.getOperation({ id })).toMatchObject({ status: 'completed', done: 25 });
      // A stale owner cannot release a lease that is no longer its own.
      const other = await service.queue.bulk.submit({ op: 'cancel', filter: { status: 'queued' } });
      if (!('operation' in other)) throw new Error('not stored');
      await driver.claimOperation({ owner: 'c', now: clock, leaseMs: 60_000 });
      await driver.releaseOperation({ id: other.operation.id, owner: 'a' });
      expect((await driver.getOperation({ id: other.operation.id }))?.leaseOwner).toBe('c');
    });

    it('counts a bulk retry in taskq_tasks_retried_total (trigger="bulk"), by action', async () => {
      const { driver, service, http } = await node();
      await seed(driver, [
        { status: 'failed', task: { action: 'mail' } },
        { status: 'cancelled', task: { action: 'mail' } },
        { status: 'failed', task: { action: 'sms' } },
        { status: 'completed', task: { action: 'sms' } },
      ]);
      const res = await http('/tasks/bulk', { method: 'POST', json: { op: 'retry', filter: {} } });
      expect(res.status).toBe(202);
      await service.operations.runOnce();
      const metrics = await service.app.inject({ url: '/metrics' });
      expect(metrics.body).toContain('taskq_tasks_retried_total{action="mail",trigger="bulk"} 2');
      expect(metrics.body).toContain('taskq_tasks_retried_total{action="sms",trigger="bulk"} 1');
      expect(metrics.body).not.toContain('trigger="manual"');
    });

    it('selected rows as a filter: up to IDS_MAX whole ids, counted and changed by key; more is a 400', async () => {
      const { driver, service, http } = await node();
      const [f1, f2, done] = await seed(driver, [
        { status: 'failed' },
        { status: 'failed' },
        { status: 'completed' },
        { status: 'failed' },
      ]);
      const id = [f1, f2, done].join(',');
      const dry = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'retry', filter: { id }, dry_run: true },
      });
      expect(dry.body).toMatchObject({ matched: 3, matched_exact: true, scans: false });
      const run = await http('/tasks/bulk', { method: 'POST', json: { op: 'retry', filter: { id } } });
      await service.operations.runOnce();
      expect((await http(`/operations/${String(run.body.operation_id)}`)).body).toMatchObject({
        status: 'completed',
        done: 2,
        skipped: 1,
      });
      expect((await driver.countTasks()).byStatus).toMatchObject({ queued: 2, failed: 1, completed: 1 });
      // the bound: IDS_MAX ids are accepted (none of these exist), one more is refused
      const many = (n: number) =>
        Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`).join(
          ',',
        );
      const atMax = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'retry', filter: { id: many(IDS_MAX) }, dry_run: true },
      });
      expect(atMax).toMatchObject({ status: 200, body: { matched: 0 } });
      const over = await http('/tasks/bulk', {
        method: 'POST',
        json: { op: 'retry', filter: { id: many(IDS_MAX + 1) }, dry_run: true },
      });
      expect(over).toMatchObject({ status: 400, body: { code: 'TQ_ERR_VALIDATION' } });
      expect(String(over.body.error)).toContain(`up to ${IDS_MAX} whole ids`);
      expect((await http(`/tasks?id=${many(IDS_MAX + 1)}`)).status).toBe(400);
    });

    it('streams progress as server-sent events until the operation finishes', async () => {
      const { driver, service } = await node();
      await seed(
        driver,
        Array.from({ length: 12 }, () => ({ status: 'failed' as const })),
      );
      const submitted = await service.queue.bulk.submit({ op: 'retry', filter: { status: 'failed' } });
      if (!('operation' in submitted)) throw new Error('not stored');
      const url = await service.app.listen({ port: 0, host: '127.0.0.1' });
      const res = await fetch(`${url}/operations/${submitted.operation.id}/events`);
      expect(res.headers.get('content-type')).toContain('text/event-stream');
      const runner = new OperationRunner({
        driver,
        bulk: service.queue.bulk,
        logger,
        owner: 'sse',
        chunk: 5,
      });
      const working = runner.runOnce();
      const text = await res.text(); // the stream ends when the operation does
      await working;
      const events = text
        .split('\n\n')
        .filter((e) => e.startsWith('event: operation'))
        .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)) as { done: number; status: string });
      expect(events[0]).toMatchObject({ done: 0, status: 'running' });
      expect(events.at(-1)).toMatchObject({ done: 12, status: 'completed' });
      const dones = events.map((e) => e.done);
      expect(dones).toEqual([...dones].sort((x, y) => x - y));
    });
  });
});
