/**
 * Regressions found by hostile input (issue 10): each is a request that once answered 5xx. They
 * run on SQLite and, with TASKQ_TEST_POSTGRES_URL, on PostgreSQL, where some of them failed.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import { TaskqNode } from '../src/service.js';
import { exchange } from './support/raw-http.js';
import { startTestService, type TestService } from './support/service.js';
import { isolatedPostgres, postgresSkip, postgresTestUrl } from './support/postgres.js';
import { tempDbPath } from './support/temp.js';

const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const UNKNOWN = '00000000-0000-4000-8000-000000000000';

const drivers: [
  string,
  (() => { driver: QueueDriver; cleanup: () => Promise<void> }) | undefined,
  object?,
][] = [
  ['SQLite', undefined],
  ['PostgreSQL', () => isolatedPostgres(postgresTestUrl() as string), postgresSkip()],
];

describe.each(drivers)('hostile input on %s', (_name, openDriver, skip) => {
  let service: TaskqNode;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    if (skip) return;
    const db = tempDbPath();
    const pg = openDriver?.();
    const config = resolveConfig({ db: db.path, logLevel: 'silent' }, {});
    service = await TaskqNode.create({ config, logger: pino({ level: 'silent' }), driver: pg?.driver });
    cleanup = async () => {
      await service.stop();
      await pg?.cleanup();
      db.cleanup();
    };
  });
  afterAll(() => cleanup?.());

  const inject = (method: 'GET' | 'POST', url: string, payload?: string, headers = {}) =>
    service.app.inject({ method, url, payload, headers: { 'content-type': 'application/json', ...headers } });
  const expect400 = async (res: Awaited<ReturnType<typeof inject>>, message: RegExp) => {
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ error: expect.stringMatching(message), code: 'TQ_ERR_VALIDATION' });
  };

  describe.skipIf(skip !== undefined)('deeply nested bodies', () => {
    // Once a 500: the parsed value reached JSON.stringify in the driver and overflowed the stack.
    it.each([
      ['/tasks', deepObject(20_000)],
      ['/tasks', deepArray(50_000)],
      ['/tasks', `{"action":"x","data":${deepObject(20_000)}}`],
      ['/tasks', `{"action":"x","data":{"b":${deepArray(50_000)}}}`],
      ['/tasks/batch', `{"tasks":[{"action":"x","data":${deepObject(20_000)}}]}`],
      ['/tasks/batch', `{"tasks":${deepArray(50_000)}}`],
      [`/tasks/${UNKNOWN}/cancel`, deepObject(20_000)],
      [`/tasks/${UNKNOWN}/retry`, deepArray(50_000)],
    ])('POST %s refuses a body nested too deep with 400 {error}', async (url, payload) => {
      await expect400(await inject('POST', url, payload), /nested more than 64 levels/);
    });

    it('accepts a body nested exactly to the limit, brackets inside strings not counted', async () => {
      // The body object is level 1 and data level 2, so 62 more levels reach 64.
      const data = `{"s":"[[[{{{\\"]]]",${'"a":{'.repeat(61)}"b":[1]${'}'.repeat(61)}}`;
      const res = await inject('POST', '/tasks', `{"action":"x","data":${data}}`);
      expect(res.statusCode).toBe(202);
      const over = await inject('POST', '/tasks', `{"action":"x","data":{"a":${data}}}`);
      expect(over.statusCode).toBe(400);
    });
  });

  // Once answered by Fastify's router with its own codes (FST_ERR_BAD_URL, a 414), outside docs/errors.md.
  it.skipIf(skip !== undefined).each([
    ['/tasks/%zz', /not valid percent-encoded/],
    ['/tasks/%c0%af/events', /not valid percent-encoded/],
    [`/tasks/${'a'.repeat(101)}`, /longer than 100 characters/],
  ])('GET %s answers 400 TQ_ERR_VALIDATION', async (url, message) => {
    await expect400(await inject('GET', url), message);
  });

  describe.skipIf(skip !== undefined)('NUL characters', () => {
    // Once a 500 on PostgreSQL, whose text columns cannot hold NUL; SQLite stored them.
    it.each([
      ['POST', '/tasks', '{"action":"a\\u0000b"}', {}, /body\/action must not contain NUL/],
      [
        'POST',
        '/tasks',
        '{"action":"ab","unique_key":"\\u0000"}',
        {},
        /body\/unique_key must not contain NUL/,
      ],
      [
        'POST',
        '/tasks',
        '{"action":"ab"}',
        { 'idempotency-key': 'a\u0000' },
        /idempotency-key must not contain NUL/,
      ],
      ['POST', '/tasks/batch', '{"tasks":[{"action":"a\\u0000b"}]}', {}, /body\/tasks\/0\/action must not/],
      ['GET', '/tasks?action=%00', undefined, {}, /querystring\/action must not contain NUL/],
      ['GET', '/tasks/%00', undefined, {}, /params\/id must not contain NUL/],
      ['GET', '/tasks/a%00b/events', undefined, {}, /params\/id must not contain NUL/],
      ['POST', '/tasks/%00/retry', '{}', {}, /params\/id must not contain NUL/],
    ] as const)('%s %s answers 400', async (method, url, payload, headers, message) => {
      await expect400(await inject(method, url, payload, headers), message);
    });

    it('keeps NUL inside data, which is stored as JSON text on both drivers', async () => {
      const res = await inject('POST', '/tasks', '{"action":"sum","data":{"k\\u0000":"\\u0000"}}');
      expect(res.statusCode).toBe(202);
      const task = await service.queue.get((res.json() as { id: string }).id);
      expect(task?.data).toEqual({ 'k\u0000': '\u0000' });
    });
  });
});

describe('malformed HTTP over a socket', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc?.stop());
  const port = () => Number(new URL(svc.url).port);

  /** The single answer to `request`: its status and parsed JSON body. */
  async function answer(request: string): Promise<{ status: number; body: unknown }> {
    const raw = await exchange(port(), Buffer.from(request, 'latin1'), { halfClose: 'after-answer' });
    const match = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(raw);
    if (!match) throw new Error(`no answer: ${JSON.stringify(raw)}`);
    expect(match[2]).toMatch(/content-type: application\/json/i);
    return { status: Number(match[1]), body: JSON.parse(match[3] as string) };
  }

  // Once an empty 400 from Node itself, which checked the Host header before any route ran.
  it('answers an HTTP/1.1 request without Host with 400 {error, code}', async () => {
    expect(await answer('GET /healthz HTTP/1.1\r\n\r\n')).toEqual({
      status: 400,
      body: { error: 'an HTTP/1.1 request needs a Host header', code: 'TQ_ERR_VALIDATION' },
    });
  });

  it('answers parser errors with {error, code}, not a bare status', async () => {
    expect(await answer('GARBAGE\r\n\r\n')).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^malformed HTTP request: /), code: 'TQ_ERR_VALIDATION' },
    });
    const big = await answer(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(70_000)}\r\n\r\n`);
    expect(big).toEqual({
      status: 431,
      body: { error: expect.any(String), code: 'TQ_ERR_HEADERS_TOO_LARGE' },
    });
  });

  // Found by the fuzz test (seed 573520755): Fastify's 404 for a method it does not route came
  // with the code of a 400.
  it('gives a Fastify 4xx the code of its status', async () => {
    const res = await answer('PRI /tasks\r\nHost: 127.0.0.1\r\n\r\n');
    expect(res).toEqual({ status: 404, body: { error: expect.any(String), code: 'TQ_ERR_NOT_FOUND' } });
  });
});
