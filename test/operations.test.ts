/** Operator routes over HTTP (inject(), a real socket for the stats stream): cancel, retry, stats, metrics, tokens. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { TaskqNode } from '../src/service.js';
import { finished, startTestApp, startTestService, type Http, type TestApp } from './support/service.js';
import { tempDbPath } from './support/temp.js';

/** Runs until its signal aborts, so a test can cancel it while it runs. */
const blocking: HandlerDefinition = {
  action: 'block',
  handle: (_task, ctx) =>
    new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
};

let running: TestApp[] = [];
async function start(...args: Parameters<typeof startTestApp>): Promise<TestApp> {
  const service = await startTestApp(...args);
  running.push(service);
  return service;
}
afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  running = [];
});

async function enqueue(http: Http, body: object, headers: Record<string, string> = {}): Promise<string> {
  const res = await http('/tasks', { method: 'POST', json: body, headers });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

/** The status a task ends in, by the API's long-poll. */
const endsAs = async (http: Http, id: string) => (await finished(http, id)).status as string;

describe('POST /tasks/:id/cancel', () => {
  it('cancels a queued task at once and answers 409 once it is finished', async () => {
    const { http } = await start();
    const id = await enqueue(http, { action: 'sum', delay_ms: 3_600_000 });
    const res = await http(`/tasks/${id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'cancelled' });
    const again = await http(`/tasks/${id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      code: 'TQ_ERR_CONFLICT',
      error: expect.stringContaining('cancelled'),
    });
  });

  it('aborts a running task, which ends cancelled (202)', async () => {
    const { http, service } = await start({}, [blocking]);
    const started = new Promise((resolve) => service.pool?.once('taskStarted', resolve));
    const id = await enqueue(http, { action: 'block' });
    await started;
    const res = await http(`/tasks/${id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ id, status: 'running' });
    expect(await endsAs(http, id)).toBe('cancelled');
  });

  it('answers 404 for an unknown task', async () => {
    const { http } = await start();
    const res = await http(`/tasks/nope/cancel`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('TQ_ERR_NOT_FOUND');
  });
});

describe('POST /tasks/:id/retry', () => {
  it('puts a failed task back with its attempts reset, and refuses a queued one', async () => {
    const { http, service } = await start({ role: 'api' });
    const id = await enqueue(http, { action: 'sum', max_attempts: 1 });
    const notYet = await http(`/tasks/${id}/retry`, { method: 'POST' });
    expect(notYet.status).toBe(409);
    await http(`/tasks/${id}/cancel`, { method: 'POST' });
    const res = await http(`/tasks/${id}/retry`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'queued', attempts: 0 });
    expect((await service.queue.get(id))?.status).toBe('queued');
  });

  it('retries a task that failed in a handler, which then runs again', async () => {
    const { http } = await start();
    const id = await enqueue(http, { action: 'sum', data: { numbers: ['x'] }, max_attempts: 1 });
    expect(await endsAs(http, id)).toBe('failed');
    const res = await http(`/tasks/${id}/retry`, { method: 'POST' });
    expect(res.status).toBe(200);
    const task = await finished(http, id);
    expect([task.status, task.attempts, task.processed_at !== null]).toEqual(['failed', 1, true]);
    expect((await http(`/tasks/nope/retry`, { method: 'POST' })).status).toBe(404);
  });
});

describe('GET /stats', () => {
  it('counts by status and action, ages the queue and reports 60 minutes of throughput', async () => {
    const { http } = await start();
    const done = await enqueue(http, { action: 'uppercase', data: { text: 'a' } });
    const bad = await enqueue(http, { action: 'sum', data: { numbers: ['x'] }, max_attempts: 1 });
    await enqueue(http, { action: 'sum', delay_ms: 3_600_000 });
    expect(await endsAs(http, done)).toBe('completed');
    expect(await endsAs(http, bad)).toBe('failed');
    const { status, body } = await http(`/stats`);
    expect(status).toBe(200);
    expect(body.counts).toEqual({ queued: 1, running: 0, completed: 1, failed: 1, cancelled: 0, blocked: 0 });
    expect(body.total).toBe(3);
    expect(body.by_action).toEqual([
      {
        action: 'sum',
        counts: { queued: 1, running: 0, completed: 0, failed: 1, cancelled: 0, blocked: 0 },
        total: 2,
      },
      {
        action: 'uppercase',
        counts: { queued: 0, running: 0, completed: 1, failed: 0, cancelled: 0, blocked: 0 },
        total: 1,
      },
    ]);
    expect(body.oldest_queued_age_ms).toBeGreaterThanOrEqual(0);
    expect(body.throughput).toHaveLength(60);
    const last = body.throughput[59];
    expect(Date.parse(last.minute)).toBe(Math.floor(Date.now() / 60_000) * 60_000);
    const sum = (k: 'completed' | 'failed') =>
      body.throughput.reduce((n: number, p: Record<string, number>) => n + (p[k] ?? 0), 0);
    expect([sum('completed'), sum('failed')]).toEqual([1, 1]);
  });

  it('streams the stats as server-sent events and ends the stream on shutdown', async () => {
    // A real connection: the stream is read while open, and must end when the server stops.
    const service = await startTestService({ role: 'api' });
    const response = await fetch(`${service.url}/events/stats`);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${pattern}`);
        text += value;
      }
    };
    await readUntil(/"queued":0/);
    await enqueue(service.http, { action: 'sum' });
    await readUntil(/"queued":1/);
    const stopping = service.stop();
    // The stream ends and the service stops promptly instead of waiting on the open response.
    for (let r = await reader.read(); !r.done; r = await reader.read());
    await stopping;
  });
});

describe('GET /metrics', () => {
  it('counts tasks by action, gauges the queue and times requests by route pattern', async () => {
    const { http } = await start();
    const ok = await enqueue(http, { action: 'uppercase', data: { text: 'a' } });
    const bad = await enqueue(http, { action: 'sum', data: { numbers: ['x'] }, max_attempts: 1 });
    expect(await endsAs(http, ok)).toBe('completed');
    expect(await endsAs(http, bad)).toBe('failed');
    await http(`/tasks/${bad}/retry`, { method: 'POST' });
    expect(await endsAs(http, bad)).toBe('failed');
    const { status, headers, body } = await http(`/metrics`);
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^text\/plain/);
    const text = body as string;
    expect(text).toContain('taskq_tasks_enqueued_total{action="uppercase"} 1');
    expect(text).toContain('taskq_tasks_completed_total{action="uppercase"} 1');
    expect(text).toContain('taskq_tasks_failed_total{action="sum"} 2');
    expect(text).toContain('taskq_tasks_retried_total{action="sum",trigger="manual"} 1');
    expect(text).toContain('taskq_tasks{status="failed"} 1');
    expect(text).toMatch(/taskq_task_duration_seconds_count\{action="uppercase",outcome="completed"\} 1/);
    expect(text).toContain('route="/tasks/:id",status_code="200"');
    expect(text).not.toContain(`route="/tasks/${ok}"`);
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('counts the tasks its workers took as they were stored (hand-off)', async () => {
    const { http, service } = await start();
    const taken: string[] = [];
    service.pool?.onHandedOff((tasks) => taken.push(...tasks.map((t) => t.id)));
    // The pool takes a task at insert when it is idle; right after a result it may still be
    // looking for more (one claim), so a few tasks may go the claim's way first.
    for (let i = 0; i < 20 && taken.length === 0; i++) {
      const id = await enqueue(http, { action: 'uppercase', data: { text: 'a' } });
      expect(await endsAs(http, id)).toBe('completed');
    }
    expect(taken.length).toBeGreaterThan(0);
    const text = (await http('/metrics')).body as string;
    expect(text).toContain(`taskq_tasks_handed_off_total{action="uppercase"} ${taken.length}`);
  });

  it('shows the flow-control limits per action and counts the claims they deferred', async () => {
    const limited: HandlerDefinition = {
      action: 'limited',
      rateLimit: { perSecond: 0.001 },
      concurrencyPerKey: 1,
      handle: () => null,
    };
    const { http, service } = await start({ rateLimits: 'uppercase=7:3' }, [limited]);
    const deferred = new Promise((resolve) => service.pool?.onClaimLimited(resolve));
    const first = await enqueue(http, { action: 'limited', concurrency_key: 'tenant-1' });
    const second = await enqueue(http, { action: 'limited', concurrency_key: 'tenant-1' });
    await deferred; // the bucket held one token: the second waits for the next (in 1000 s)
    expect(await endsAs(http, first)).toBe('completed');
    const task = await http(`/tasks/${second}`);
    expect(task.body).toMatchObject({ status: 'queued', concurrency_key: 'tenant-1' });
    const text = (await http('/metrics')).body as string;
    expect(text).toContain('taskq_rate_limit_per_second{action="uppercase"} 7');
    expect(text).toContain('taskq_rate_limit_burst{action="uppercase"} 3');
    expect(text).toContain('taskq_rate_limit_per_second{action="limited"} 0.001');
    expect(text).toContain('taskq_concurrency_per_key{action="limited"} 1');
    // Which limit deferred it depends on timing: a claim while the first still runs meets the key's
    // cap, one after it finished meets the empty bucket. Either is a deferred claim counted.
    expect(text).toMatch(
      /taskq_claims_deferred_total\{action="limited",reason="(rate_limit|concurrency_key)"\} [1-9]/,
    );
  });

  it('is served by worker-only nodes too', async () => {
    const { http } = await start({ role: 'worker' });
    const res = await http(`/metrics`);
    expect(res.status).toBe(200);
    expect(res.body).toContain('taskq_tasks{status="queued"} 0');
    expect((await http(`/stats`)).status).toBe(404);
  });
});

describe('API tokens', () => {
  it('requires the bearer token on every route but /healthz and the dashboard shell', async () => {
    const { http } = await start({ apiToken: 's3cret-token' });
    for (const path of ['/tasks', '/stats', '/metrics', '/openapi.json', '/events/stats']) {
      const res = await http(`${path}`);
      expect(res.status, path).toBe(401);
      expect(res.body).toEqual({ error: expect.any(String), code: 'TQ_ERR_UNAUTHORIZED' });
    }
    for (const header of [
      'Bearer wrong',
      'Bearer s3cret-token-longer',
      's3cret-token',
      'Basic s3cret-token',
    ]) {
      expect((await http(`/stats`, { headers: { authorization: header } })).status, header).toBe(401);
    }
    expect((await http(`/stats`, { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);
    expect((await http(`/healthz`)).status).toBe(200);
    for (const path of ['/', '/dashboard', '/dashboard/app.js', '/dashboard/style.css', '/docs']) {
      expect((await http(`${path}`)).status, path).toBe(200);
    }
  });

  it('warns once at start when listening beyond loopback without a token', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const warnings = async (host: string, apiToken?: string) => {
      lines.length = 0;
      const db = tempDbPath();
      const config = resolveConfig({ db: db.path, port: 0, host, role: 'api', apiToken }, {});
      const service = await TaskqNode.create({ config, logger: pino({ level: 'warn' }, sink) });
      await service.start();
      await service.stop();
      db.cleanup();
      return lines.filter((l) => l.includes('no API token')).length;
    };
    expect(await warnings('0.0.0.0')).toBe(1);
    expect(await warnings('127.0.0.1')).toBe(0);
    expect(await warnings('0.0.0.0', 'token')).toBe(0);
  });
});
