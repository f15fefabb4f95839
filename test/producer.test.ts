/** Producer features over HTTP: delays, priorities, idempotency, batches, waiting, events, progress. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestApp, startTestService, type TestApp } from './support/service.js';
import { gate } from './support/signals.js';

let svc: TestApp | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
});
const post = (body: unknown, headers: Record<string, string> = {}) =>
  svc!.http(`/tasks`, { method: 'POST', headers, json: body });
const get = async (id: string) => (await svc!.http(`/tasks/${id}`)).body;

describe('delayed tasks', () => {
  it('keeps a delayed task queued with its run_at, and runs it after', async () => {
    svc = await startTestApp({ pollMs: 20 });
    const before = Date.now();
    const { body } = await post({ action: 'uppercase', data: { text: 'later' }, delay_ms: 1000 });
    const queued = await get(body.id);
    expect(queued.status).toBe('queued');
    expect(Date.parse(queued.run_at)).toBeGreaterThanOrEqual(before + 1000);
    // A long poll: answers when the task has finished.
    const done = (await svc.http(`/tasks/${body.id}?wait=10`)).body;
    expect(done.status).toBe('completed');
    expect(Date.parse(done.started_at)).toBeGreaterThanOrEqual(Date.parse(queued.run_at));
  });

  it('accepts run_at as ISO 8601 and refuses run_at with delay_ms', async () => {
    svc = await startTestApp({ role: 'api' });
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const { body } = await post({ action: 'sum', run_at: at });
    expect((await get(body.id)).run_at).toBe(at);
    const both = await post({ action: 'sum', run_at: at, delay_ms: 5 });
    expect(both.status).toBe(400);
    expect(both.body.error).toMatch(/run_at or delay_ms, not both/);
  });
});

describe('priorities', () => {
  it('runs higher priority first, FIFO within a priority', async () => {
    svc = await startTestApp({ role: 'api' });
    const order: [string, number][] = [
      ['low-1', -5],
      ['mid-1', 0],
      ['high-1', 10],
      ['mid-2', 0],
      ['high-2', 10],
    ];
    for (const [name, priority] of order) await post({ action: 'sum', data: { name }, priority });
    const claimed = await svc.service.driver.claimTasks({
      owner: 't',
      limit: 10,
      now: Date.now(),
      leaseMs: 1000,
    });
    expect(claimed.map((t) => t.data.name)).toEqual(['high-1', 'high-2', 'mid-1', 'mid-2', 'low-1']);
    expect((await get(claimed[0]!.id)).priority).toBe(10);
  });

  it('refuses a priority out of range', async () => {
    svc = await startTestApp({ role: 'api' });
    const res = await post({ action: 'sum', priority: 101 });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/priority must be <= 100/);
  });
});

describe('idempotency', () => {
  it('answers a repeated key with the original task (200), and a different body with 409', async () => {
    svc = await startTestApp({ role: 'api' });
    const first = await post({ action: 'sum', data: { numbers: [1] } }, { 'idempotency-key': 'order-42' });
    expect(first.status).toBe(202);
    const again = await post({ action: 'sum', data: { numbers: [1] } }, { 'idempotency-key': 'order-42' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const viaField = await post({ action: 'sum', data: { numbers: [1] }, unique_key: 'order-42' });
    expect(viaField.body.id).toBe(first.body.id);
    const different = await post(
      { action: 'sum', data: { numbers: [2] } },
      { 'idempotency-key': 'order-42' },
    );
    expect(different.status).toBe(409);
    expect(different.body.error).toMatch(/different request/);
    const list = await svc.http(`/tasks?action=sum`);
    expect(list.body.count).toBe(1);
  });

  it('queues a new task once the window has passed', async () => {
    svc = await startTestApp({ role: 'api', idempotencyWindowMs: 1000 });
    const first = await post({ action: 'sum' }, { 'idempotency-key': 'k' });
    // The queue dates keys by Date.now(): move only that clock past the window, timers stay real.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 1100 });
    const second = await post({ action: 'sum' }, { 'idempotency-key': 'k' }).finally(() =>
      vi.useRealTimers(),
    );
    expect(second.status).toBe(202);
    expect(second.body.id).not.toBe(first.body.id);
  });

  it('deduplicates concurrent requests with the same key', async () => {
    svc = await startTestApp({ role: 'api' });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => post({ action: 'sum' }, { 'idempotency-key': 'burst' })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 202)).toHaveLength(1);
  });
});

describe('POST /tasks/batch', () => {
  it('queues all tasks in one transaction and answers their ids in order', async () => {
    svc = await startTestApp();
    const tasks = Array.from({ length: 50 }, (_, i) => ({ action: 'sum', data: { numbers: [i, 1] } }));
    const res = await svc.http(`/tasks/batch`, { method: 'POST', json: { tasks } });
    expect(res.status).toBe(202);
    expect(res.body.ids).toHaveLength(50);
    const last = await svc.http(`/tasks/${res.body.ids[49]}?wait=10`);
    expect(last.body.result).toEqual({ output: 50 });
    expect((await get(res.body.ids[3])).data).toEqual({ numbers: [3, 1] });
  });

  it('stores nothing when any item is bad, and names the index of each bad item', async () => {
    svc = await startTestApp({ role: 'api' });
    const tasks = [
      { action: 'sum' },
      { action: '' },
      { action: 'sum', data: [] },
      { action: 'sum' },
      { nope: 1 },
    ];
    const res = await svc.http(`/tasks/batch`, { method: 'POST', json: { tasks } });
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { index: number }) => e.index)).toEqual([1, 2, 4]);
    expect(res.body.error).toMatch(/body\/tasks\/1\/action must NOT have fewer than 1 characters/);
    expect(res.body.errors[1].error).toMatch(/body\/tasks\/2\/data must be object/);
    expect((await svc.http(`/tasks`)).body.count).toBe(0);
  });

  it('refuses more than 1,000 tasks and an empty list', async () => {
    svc = await startTestApp({ role: 'api', bodyLimit: 10 * 1024 * 1024 });
    const tooMany = await svc.http(`/tasks/batch`, {
      method: 'POST',
      json: { tasks: Array.from({ length: 1001 }, () => ({ action: 'sum' })) },
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error).toMatch(/must NOT have more than 1000 items/);
    const empty = await svc.http(`/tasks/batch`, { method: 'POST', json: { tasks: [] } });
    expect(empty.status).toBe(400);
  });
});

describe('waiting for a result', () => {
  it('long-polls until the task finishes, woken by the completion', async () => {
    svc = await startTestApp({ pollMs: 5000 }, [
      { action: 'slow', handle: () => new Promise((r) => setTimeout(() => r('done'), 300)) },
    ]);
    const { body } = await post({ action: 'slow' });
    const t0 = Date.now();
    const res = await svc.http(`/tasks/${body.id}?wait=10`);
    const waited = Date.now() - t0;
    expect(res.body.status).toBe('completed');
    expect(res.body.result).toBe('done');
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(3000); // woken by the change, not the 5 s re-check
  });

  it('answers with the task as it is when the wait runs out', async () => {
    svc = await startTestApp({ role: 'api' });
    const { body } = await post({ action: 'sum' });
    const t0 = Date.now();
    const res = await svc.http(`/tasks/${body.id}?wait=0.3`);
    expect(res.body.status).toBe('queued');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('refuses a wait over 60 seconds', async () => {
    svc = await startTestApp({ role: 'api' });
    const { body } = await post({ action: 'sum' });
    const res = await svc.http(`/tasks/${body.id}?wait=61`);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/wait must be <= 60/);
  });

  it('streams state changes and progress as server-sent events', async () => {
    // Held before and after its progress, so the stream is open when progress is reported and
    // has sent it before the task finishes.
    const start = gate();
    const finish = gate();
    // A real connection: the test reads the stream while it is still open.
    const streaming = await startTestService({}, [
      {
        action: 'progressing',
        handle: async (_t, ctx) => {
          await start.promise;
          await ctx.progress(50, 'half way');
          await finish.promise;
          return { ok: true };
        },
      },
    ]);
    svc = streaming;
    const { body } = await post({ action: 'progressing' });
    const response = await fetch(`${streaming.url}/tasks/${body.id}/events`);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    start.open();
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      text += r.value;
      if (text.includes('"progress":50')) finish.open();
    } // the stream ends when the task finishes
    const events = text
      .split('\n\n')
      .filter((block) => block.startsWith('event: task'))
      .map((block) => JSON.parse(block.split('data: ')[1]!));
    expect(events.at(-1).status).toBe('completed');
    expect(events.some((e) => e.progress === 50 && e.progress_message === 'half way')).toBe(true);
    expect(events[0].status).toMatch(/queued|running/);
  });
});
