/** The HTTP API contract, against a real service on a real SQLite file, through inject(). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, startTestApp, type TestApp } from './support/service.js';

let svc: TestApp;
const post = (body: unknown, headers: Record<string, string> = {}) =>
  svc.http(`/tasks`, { method: 'POST', headers, json: body });

beforeAll(async () => {
  svc = await startTestApp({ bodyLimit: 64 * 1024 });
});
afterAll(async () => {
  await svc.stop();
});

describe('POST /tasks', () => {
  it('answers 202 {id, status: queued} with a Location, and the task is stored at once', async () => {
    const res = await post({ action: 'uppercase', data: { text: 'hello world' } });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'queued' });
    expect(res.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(res.headers.get('location')).toBe(`/tasks/${res.body.id}`);
    const stored = await svc.service.queue.get(res.body.id);
    expect(stored?.action).toBe('uppercase');
  });

  it('runs the original actions and stores their results', async () => {
    const upper = await post({ action: 'uppercase', data: { text: 'hello world' } });
    const sum = await post({ action: 'sum', data: { numbers: [1, 2, 3.5] } });
    const other = await post({ action: 'resize-image' });
    const done = async (id: string) => {
      const task = await finished(svc.http, id);
      expect(task.status).toBe('completed');
      return task;
    };
    expect((await done(upper.body.id)).result).toEqual({ output: 'HELLO WORLD' });
    expect((await done(sum.body.id)).result).toEqual({ output: 6.5 });
    const fallback = await done(other.body.id);
    expect(fallback.result).toEqual({ output: 'processed' });
    expect(fallback.data).toEqual({});
  });

  it('fails sum with a clear error when a number is not a number, without retrying', async () => {
    const res = await post({ action: 'sum', data: { numbers: [1, 'two'] } });
    const task = await finished(svc.http, res.body.id);
    expect(task.status).toBe('failed');
    expect(task.error).toBe('sum: data.numbers[1] is not a number ("two")');
    expect(task.attempts).toBe(1);
    expect(task.processed_at).not.toBeNull();
  });

  it.each([
    ['a missing action', { data: {} }, /missing "action"/],
    ['an empty action', { action: '' }, /action must NOT have fewer than 1 characters/],
    ['a non-string action', { action: 42 }, /action must be string/],
    ['a too long action', { action: 'x'.repeat(129) }, /action must NOT have more than 128 characters/],
    ['data that is an array', { action: 'sum', data: [1, 2] }, /body\/data must be object/],
    ['data that is null', { action: 'sum', data: null }, /body\/data must be object/],
    ['data that is a string', { action: 'sum', data: 'x' }, /body\/data must be object/],
    ['an array body', [{ action: 'sum' }], /body must be object/],
    ['a null body', null, /body must be object/],
    ['max_attempts 0', { action: 'sum', max_attempts: 0 }, /max_attempts must be >= 1/],
    ['max_attempts 101', { action: 'sum', max_attempts: 101 }, /max_attempts must be <= 100/],
    ['max_attempts as a string', { action: 'sum', max_attempts: '3' }, /max_attempts must be integer/],
    ['an unknown field', { action: 'sum', colour: 'red' }, /unknown field "colour"/],
    ['a bad run_at', { action: 'sum', run_at: 'tomorrow' }, /run_at must be an ISO 8601 date-time/],
  ])('refuses %s with 400 {error}', async (_name, body, message) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect(res.body.code).toBe('TQ_ERR_VALIDATION');
  });

  it('stores a concurrency_key, alone and in a batch, and shows it on the task', async () => {
    const one = await post({ action: 'uppercase', data: { text: 'a' }, concurrency_key: 'tenant-1' });
    expect(one.status).toBe(202);
    const batch = await svc.http('/tasks/batch', {
      method: 'POST',
      json: { tasks: [{ action: 'uppercase', concurrency_key: 'tenant-2' }, { action: 'uppercase' }] },
    });
    expect(batch.status).toBe(202);
    const [keyed, plain] = batch.body.ids as string[];
    expect((await svc.http(`/tasks/${one.body.id}`)).body.concurrency_key).toBe('tenant-1');
    expect((await svc.http(`/tasks/${keyed}`)).body.concurrency_key).toBe('tenant-2');
    expect((await svc.http(`/tasks/${plain}`)).body.concurrency_key).toBeNull();
  });

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['not a string', 7],
  ])('refuses a concurrency_key that is %s with 400', async (_name, key) => {
    const res = await post({ action: 'uppercase', concurrency_key: key });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/concurrency_key/);
  });

  it('answers 409 for an idempotency key repeated with another concurrency_key', async () => {
    const body = { action: 'uppercase', unique_key: 'flow-replay', concurrency_key: 'a' };
    expect((await post(body)).status).toBe(202);
    expect((await post(body)).status).toBe(200);
    expect((await post({ ...body, concurrency_key: 'b' })).status).toBe(409);
  });

  it('refuses invalid JSON with 400', async () => {
    const res = await svc.http(`/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"action": "sum",',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/invalid JSON/);
  });

  it('refuses an empty JSON body with 400', async () => {
    const res = await svc.http(`/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toEqual(expect.any(String));
  });

  it('refuses a body over the limit with 413', async () => {
    const res = await post({ action: 'sum', data: { blob: 'x'.repeat(70 * 1024) } });
    expect(res.status).toBe(413);
    expect(res.body.error).toEqual(expect.any(String));
  });

  it('refuses a body that is not JSON with 415', async () => {
    const res = await svc.http(`/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'action=sum',
    });
    expect(res.status).toBe(415);
    expect(res.body.error).toMatch(/application\/json/);
  });

  it('stays up and correct through a burst of malformed requests', async () => {
    const bad = Array.from({ length: 300 }, (_, i) =>
      svc.http(`/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: ['{', '[]', 'null', '{"action":1}', '"x"', '{"action":"a","data":[]}'][i % 6],
      }),
    );
    const results = await Promise.all(bad);
    expect(results.every((r) => r.status === 400)).toBe(true);
    const good = await post({ action: 'uppercase', data: { text: 'still here' } });
    expect(good.status).toBe(202);
    const health = await svc.http(`/healthz`);
    expect(health.status).toBe(200);
  });
});

describe('GET /tasks', () => {
  it('lists newest first with count and next_cursor, and pages through everything', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await post({ action: 'page-test', data: { i } })).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await svc.http(`/tasks?action=page-test&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.body.count).toBe(res.body.tasks.length);
      seen.push(...res.body.tasks.map((t: { id: string }) => t.id));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  it('filters by status', async () => {
    const { body } = await post({ action: 'uppercase', data: { text: 'x' } });
    expect((await finished(svc.http, body.id)).status).toBe('completed');
    const res = await svc.http(`/tasks?status=completed&limit=1000`);
    expect(res.body.tasks.length).toBeGreaterThan(0);
    expect(res.body.tasks.every((t: { status: string }) => t.status === 'completed')).toBe(true);
    expect(res.body.tasks.map((t: { id: string }) => t.id)).toContain(body.id);
  });

  it('shows tasks with JSON values and ISO times', async () => {
    const { body } = await post({ action: 'uppercase', data: { text: 'shape' } });
    const task = await finished(svc.http, body.id);
    expect(task.status).toBe('completed');
    expect(Object.keys(task)).toEqual(
      expect.arrayContaining([
        'id',
        'action',
        'data',
        'status',
        'result',
        'error',
        'attempts',
        'max_attempts',
        'created_at',
        'started_at',
        'processed_at',
      ]),
    );
    expect(task.data).toEqual({ text: 'shape' });
    expect(task.result).toEqual({ output: 'SHAPE' });
    for (const field of ['created_at', 'started_at', 'processed_at']) {
      expect(new Date(task[field]).toISOString()).toBe(task[field]);
    }
  });

  it.each([
    [
      'an unknown status',
      'status=done',
      /status must be one of: queued, running, completed, failed, cancelled/,
    ],
    ['limit 0', 'limit=0', /limit must be >= 1/],
    ['limit 1001', 'limit=1001', /limit must be <= 1000/],
    ['a non-numeric limit', 'limit=ten', /limit must be integer/],
    ['an unknown parameter', 'sort=asc', /unknown filter "sort"/],
    ['a forged cursor', 'cursor=bm9wZQ', /cursor/],
  ])('refuses %s with 400', async (_name, query, message) => {
    const res = await svc.http(`/tasks?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
  });
});

describe('GET /tasks/:id and other routes', () => {
  it('answers 404 {error} for an unknown task', async () => {
    const res = await svc.http(`/tasks/00000000-0000-4000-8000-000000000000`);
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/not found/);
  });

  it('takes a task id in upper case as well (UUIDs are case-insensitive)', async () => {
    const created = await post({ action: 'uppercase', data: { text: 'x' } });
    const upper = created.body.id.toUpperCase();
    const res = await svc.http(`/tasks/${upper}`);
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(created.body.id);
    const retry = await svc.http(`/tasks/${upper}/retry`, { method: 'POST' });
    expect(retry.status).toBe(409); // found, and not retryable: queued, running or completed
  });

  it('answers 404 {error} for an unknown route', async () => {
    const res = await svc.http(`/nope`);
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/no route/);
  });

  it('reports health', async () => {
    const res = await svc.http(`/healthz`);
    expect(res.status).toBe(200);
    expect(res.body.checks.database).toBe('ok');
  });
});

describe('strict actions', () => {
  it('refuses an unknown action with 400 naming the known ones', async () => {
    const strict = await startTestApp({ strictActions: true });
    try {
      const res = await strict.http(`/tasks`, { method: 'POST', json: { action: 'resize' } });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('unknown action "resize"; known actions: sum, uppercase');
      const ok = await strict.http(`/tasks`, {
        method: 'POST',
        json: { action: 'sum', data: { numbers: [1] } },
      });
      expect(ok.status).toBe(202);
    } finally {
      await strict.stop();
    }
  });
});

describe('health when the database is gone', () => {
  it('answers 503', async () => {
    const svc2 = await startTestApp({ role: 'api' });
    try {
      await svc2.service.driver.close();
      const res = await svc2.http(`/healthz`);
      expect(res.status).toBe(503);
      expect(res.body.status).toBe('unavailable');
    } finally {
      await svc2.stop();
    }
  });
});
