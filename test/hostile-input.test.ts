/** Regressions found by hostile input (issue 10): each is a request that once answered 5xx. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './support/service.js';

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(async () => {
  await svc.stop();
});

const inject = (url: string, payload: string) =>
  svc.service.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);

describe('deeply nested bodies', () => {
  // Once a 500: the parsed value reached JSON.stringify in the driver and overflowed the stack.
  it.each([
    ['/tasks', deepObject(20_000)],
    ['/tasks', deepArray(50_000)],
    ['/tasks', `{"action":"x","data":${deepObject(20_000)}}`],
    ['/tasks', `{"action":"x","data":{"b":${deepArray(50_000)}}}`],
    ['/tasks/batch', `{"tasks":[{"action":"x","data":${deepObject(20_000)}}]}`],
    ['/tasks/batch', `{"tasks":${deepArray(50_000)}}`],
    ['/tasks/00000000-0000-4000-8000-000000000000/cancel', deepObject(20_000)],
    ['/tasks/00000000-0000-4000-8000-000000000000/retry', deepArray(50_000)],
  ])('POST %s refuses a body nested too deep with 400 {error}', async (url, payload) => {
    const res = await inject(url, payload);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: expect.stringMatching(/nested more than 64 levels/),
      code: 'TQ_ERR_VALIDATION',
    });
  });

  it('accepts a body nested exactly to the limit, brackets inside strings not counted', async () => {
    // The body object is level 1 and data level 2, so 62 more levels reach 64.
    const data = `{"s":"[[[{{{\\"]]]",${'"a":{'.repeat(61)}"b":[1]${'}'.repeat(61)}}`;
    const res = await inject('/tasks', `{"action":"x","data":${data}}`);
    expect(res.statusCode).toBe(202);
    const over = await inject('/tasks', `{"action":"x","data":{"a":${data}}}`);
    expect(over.statusCode).toBe(400);
  });
});
