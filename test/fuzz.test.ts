/**
 * Property-based fuzzing of the HTTP API with hostile input (issue 10): bodies, query strings,
 * path parameters and headers through `inject()`, then raw malformed HTTP over loopback, on
 * SQLite and (with TASKQ_TEST_POSTGRES_URL) PostgreSQL. The properties: no request answers 5xx,
 * every 4xx is JSON `{error: string, code}` with a documented code for its status, the process never crashes or logs an error, and a normal
 * request still answers at once afterwards.
 *
 * Every run prints its seed; `FUZZ_SEED=<seed>` replays a run, `FUZZ_RUNS=<factor>` scales the
 * number of cases (1 by default).
 */
import { randomInt } from 'node:crypto';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import { ERROR_CODES } from '../src/core/errors.js';
import { TASK_STATUSES } from '../src/core/task.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import { encodeCursor } from '../src/queue/queue.js';
import { TaskqNode } from '../src/service.js';
import { exchange } from './support/raw-http.js';
import { isolatedPostgres, postgresSkip, postgresTestUrl } from './support/postgres.js';
import { tempDbPath } from './support/temp.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
const SCALE = Number(process.env.FUZZ_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);

const TOKEN = 'fuzz-token-0123456789';
const AUTH = `Bearer ${TOKEN}`;
/** Small, so bodies around the limit are cheap to make. */
const BODY_LIMIT = 16 * 1024;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';
interface Req {
  method: Method;
  url: string;
  headers: Record<string, string | string[]>;
  payload?: string | Buffer;
}

interface Target {
  service: TaskqNode;
  /** Set when the target listens (for raw bytes over a socket); otherwise inject() only. */
  port: number | undefined;
  /** Lines the service logged at error level or above: each is a fault of ours. */
  errors: string[];
  /** A task that has finished, so ?wait on it answers at once. */
  finishedId: string;
  stop: () => Promise<void>;
}

async function startTarget({
  driver,
  listen = false,
}: { driver?: QueueDriver; listen?: boolean } = {}): Promise<Target> {
  const db = tempDbPath();
  const config = resolveConfig(
    { db: db.path, port: 0, host: '127.0.0.1', apiToken: TOKEN, bodyLimit: BODY_LIMIT, logLevel: 'error' },
    {},
  );
  const errors: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      errors.push(chunk.toString());
      done();
    },
  });
  const service = await TaskqNode.create({ config, logger: pino({ level: 'error' }, sink), driver });
  let address: string | undefined;
  if (listen) address = await service.start();
  else {
    await service.app.ready();
    service.startBackground();
  }
  const created = await service.app.inject({
    method: 'POST',
    url: '/tasks',
    headers: { authorization: AUTH },
    payload: { action: 'uppercase', data: { text: 'x' } },
  });
  const finishedId = (created.json() as { id: string }).id;
  await service.queue.waitForFinish(finishedId, 10_000);
  return {
    service,
    port: address === undefined ? undefined : Number(new URL(address).port),
    errors,
    finishedId,
    stop: async () => {
      await service.stop();
      db.cleanup();
    },
  };
}

const describeReq = (req: Req) =>
  JSON.stringify({ ...req, payload: req.payload?.toString().slice(0, 300) }).slice(0, 1000);

/** The properties every answer must have. */
function checkAnswer(req: Req, status: number, headers: Record<string, unknown>, body: string): void {
  // /healthz answering 503 because this test process's event loop stalled (a loaded machine) is
  // the health check doing its job, not an answer to the input. A HEAD answer has no body to say
  // so; /healthz reads no input, so its HEAD 503 can only be that too.
  if (status === 503 && req.url.startsWith('/healthz')) {
    if (body.includes('event loop blocked') || req.method === 'HEAD') return;
  }
  if (status >= 500) throw new Error(`${status} ${body.slice(0, 300)} for ${describeReq(req)}`);
  if (status < 400 || req.method === 'HEAD') return;
  expect(String(headers['content-type']), describeReq(req)).toMatch(/^application\/json/);
  const parsed = JSON.parse(body) as { error?: unknown; code?: unknown };
  expect(typeof parsed.error, `${body} for ${describeReq(req)}`).toBe('string');
  // Every code is one of docs/errors.md, so clients can branch on it.
  expect(ERROR_CODES, `${body} for ${describeReq(req)}`).toHaveProperty([String(parsed.code)], status);
}

/** How many answers had each status, printed after each property to show what the cases reached. */
const tally = new Map<number, number>();

async function send(target: Target, req: Req): Promise<void> {
  const res = await target.service.app.inject({
    method: req.method,
    url: req.url,
    headers: req.headers,
    payload: req.payload,
  });
  tally.set(res.statusCode, (tally.get(res.statusCode) ?? 0) + 1);
  checkAnswer(req, res.statusCode, res.headers, res.body);
}

/** A valid task goes in and comes back out, quickly, after whatever came before. */
async function roundTrip(target: Target): Promise<void> {
  const startedAt = Date.now();
  const app = target.service.app;
  const created = await app.inject({
    method: 'POST',
    url: '/tasks',
    headers: { authorization: AUTH },
    payload: { action: 'sum', data: { numbers: [1, 2] } },
  });
  expect(created.statusCode).toBe(202);
  const { id } = created.json() as { id: string };
  const read = await app.inject({ url: `/tasks/${id}`, headers: { authorization: AUTH } });
  expect(read.statusCode).toBe(200);
  expect((read.json() as { id: string }).id).toBe(id);
  // Generous for two shared cores; a wedged event loop or a lock left held takes far longer.
  expect(Date.now() - startedAt).toBeLessThan(2000);
}

// ---- Arbitraries ----

/** Characters a header value may hold (tab, printable ASCII, Latin-1). */
const headerChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.integer({ min: 0x80, max: 0xff }),
  fc.constant(0x09),
);
const headerValue = fc.array(headerChar, { maxLength: 80 }).map((codes) => String.fromCharCode(...codes));
const headerName = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,24}$/);
const anyString = fc.string({ unit: 'binary', maxLength: 200 });

const authorization = fc.oneof(
  { weight: 12, arbitrary: fc.constant(AUTH) },
  fc.constantFrom(
    `bearer ${TOKEN}`,
    `BEARER\t${TOKEN}`,
    `Bearer  ${TOKEN}  `,
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(1)}`,
    `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`,
    'Bearer',
    'Bearer ',
    TOKEN,
    '',
  ),
  headerValue,
);

/** Percent-encodes every byte of a string's UTF-8 (encodeURIComponent throws on lone surrogates). */
const percentEncode = (text: string) =>
  [...Buffer.from(text, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

/** A piece of a URL: encoded, raw URL-safe characters, or bad escapes. */
const urlPart = fc.oneof(
  anyString.map(encodeURIComponentSafe),
  anyString.map(percentEncode),
  fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@/-]{0,40}$/),
  fc.constantFrom(
    '%',
    '%z',
    '%zz',
    '%00',
    '%ff',
    '%c0%af',
    '%ed%a0%80',
    '%2e%2e%2f',
    '..',
    '%u0041',
    '\u00e9',
  ),
  fc.integer({ min: 1, max: 20_000 }).map((n) => 'a'.repeat(n)),
);

function encodeURIComponentSafe(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return percentEncode(text); // a lone surrogate
  }
}

const edgeNumberText = fc.oneof(
  fc.constantFrom(
    '0',
    '-0',
    '1',
    '-1',
    '100',
    '101',
    '-100',
    '-101',
    '1.0',
    '1.5',
    '1e2',
    '1E2',
    '1e400',
    '-1e400',
    '1e-400',
    '3.0000000000000001',
    '9007199254740991',
    '9007199254740993',
    '-9007199254740993',
    '31536000000',
    '31536000001',
    '18446744073709551616',
    '123456789012345678901234567890',
  ),
  fc.double().filter(Number.isFinite).map(String),
  fc.integer().map(String),
  fc.bigInt().map(String),
);

const edgeNumber = edgeNumberText.map(Number).filter(Number.isFinite);

/** Mostly-valid task bodies with edge values, as a value to stringify. */
const taskObject = fc.record(
  {
    action: fc.oneof(
      fc.constantFrom('sum', 'uppercase', 'resize-image', '', ' ', 'x'.repeat(128), 'x'.repeat(129)),
      anyString,
    ),
    data: fc.oneof(
      fc.dictionary(anyString, fc.jsonValue({ maxDepth: 4 }), { maxKeys: 5 }),
      fc.jsonValue({ maxDepth: 3 }),
      fc.constant({ numbers: [1, 'two'] }),
      fc.constant({ text: 42 }),
    ),
    max_attempts: fc.oneof(edgeNumber, anyString),
    priority: edgeNumber,
    run_at: fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('', 'tomorrow', '275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00Z', '0', 'Z'),
      anyString,
    ),
    delay_ms: edgeNumber,
    unique_key: fc.oneof(anyString, fc.constant('k'.repeat(256))),
  },
  { requiredKeys: [] },
);

/** A body with a raw number at an edge where JSON.stringify would have normalised it. */
const rawNumberBody = fc
  .tuple(fc.constantFrom('max_attempts', 'priority', 'delay_ms'), edgeNumberText)
  .map(([field, number]) => `{"action":"sum","${field}":${number}}`);

/** Depths on both sides of the limit and far beyond, where recursion over the value overflows. */
const deepBody = (where: 'top' | 'data' | 'batch') =>
  fc
    .tuple(
      fc.oneof(fc.integer({ min: 1, max: 200 }), fc.noBias(fc.integer({ min: 200, max: 30_000 }))),
      fc.constantFrom('{"a":', '[', '{"a":[', '[{"a":'),
    )
    .map(([n, open]) => {
      const close = [...open]
        .filter((c) => c === '{' || c === '[')
        .reverse()
        .map((c) => (c === '{' ? '}' : ']'))
        .join('');
      const value = open.repeat(n) + '1' + close.repeat(n);
      if (where === 'top') return value;
      const task = `{"action":"sum","data":{"v":${value}}}`;
      return where === 'data' ? task : `{"tasks":[${task}]}`;
    });

const nearLimitBody = fc
  .integer({ min: BODY_LIMIT - 100, max: BODY_LIMIT + 100 })
  .map((n) => `{"action":"sum","data":{"s":"${'a'.repeat(Math.max(0, n - 40))}"}}`);

const trickyText = fc.constantFrom(
  '',
  ' ',
  'null',
  'true',
  '0',
  '"string"',
  '[]',
  '{}',
  '{"action":"sum"',
  '{"action":"sum"}}',
  '\ufeff{"action":"sum"}',
  '{"action":"\\ud800"}',
  '{"action":"\\u0000"}',
  '{"action":"sum","data":{"\\ud83d":"\\udc00"}}',
  '{"action":"sum","__proto__":{"x":1}}',
  '{"action":"sum","data":{"__proto__":{"x":1}}}',
  '{"action":"sum","data":{"constructor":{"prototype":{"x":1}}}}',
  '{"action":"sum","action":"uppercase"}',
  '{"tasks":[]}',
  `{"tasks":[${'{"action":"sum"},'.repeat(1000)}{"action":"sum"}]}`,
  '{"tasks":{"length":1,"0":{"action":"sum"}}}',
  '{"tasks":[null,1,"x",[],{}]}',
  '{"action":"sum","data":{"a":1e999}}',
);

const anyBody = fc.oneof(
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: trickyText },
  { weight: 2, arbitrary: anyString },
);
/** Bodies meant for each route, so most cases get past the first check. */
const BODIES = {
  '/tasks': fc.oneof(
    { weight: 6, arbitrary: taskObject.map((t) => JSON.stringify(t)) },
    { weight: 2, arbitrary: rawNumberBody },
    { weight: 1, arbitrary: deepBody('top') },
    { weight: 2, arbitrary: deepBody('data') },
    { weight: 1, arbitrary: nearLimitBody },
    { weight: 3, arbitrary: anyBody },
  ),
  '/tasks/batch': fc.oneof(
    {
      weight: 6,
      arbitrary: fc.array(taskObject, { maxLength: 8 }).map((tasks) => JSON.stringify({ tasks })),
    },
    { weight: 2, arbitrary: deepBody('batch') },
    { weight: 3, arbitrary: anyBody },
  ),
  '/tasks/:id/cancel': anyBody,
};
const payload = (route: keyof typeof BODIES): fc.Arbitrary<string | Buffer> =>
  fc.oneof(
    { weight: 6, arbitrary: BODIES[route] },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }).map((bytes) => Buffer.from(bytes)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        Buffer.from([0xc0, 0xaf]),
        Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]),
        Buffer.from('{"action":"s\xffm"}', 'latin1'),
        Buffer.from('{"action":"sum"}', 'utf16le'),
      ),
    },
  );

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  fc.constantFrom(
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'application/json; charset=utf-16',
    'APPLICATION/JSON',
    'application/json;',
    'application/json ;charset=utf-8',
    'application/json, text/plain',
    'application/jsonx',
    'application/json-patch+json',
    'application/vnd.api+json',
    'text/plain',
    'text/json',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
    '*/*',
    ';',
    '',
  ),
  headerValue,
);

const taskId = (target: Target) =>
  fc.oneof(
    fc.uuid(),
    fc.uuid().map((u) => u.toUpperCase()),
    fc.constant(target.finishedId),
    fc.constant(target.finishedId.toUpperCase()),
    urlPart,
  );

const bodyRequests = (): fc.Arbitrary<Req> =>
  fc
    .constantFrom<keyof typeof BODIES>('/tasks', '/tasks', '/tasks/batch', '/tasks/:id/cancel')
    .chain((route) =>
      fc.record({
        url: route.includes(':id')
          ? fc.tuple(fc.uuid(), fc.constantFrom('cancel', 'retry')).map(([id, op]) => `/tasks/${id}/${op}`)
          : fc.constant(route),
        method: fc.oneof(
          { weight: 8, arbitrary: fc.constant<Method>('POST') },
          fc.constantFrom<Method>('PUT', 'PATCH', 'DELETE'),
        ),
        contentType: fc.option(contentType, { nil: undefined, freq: 10 }),
        payload: payload(route),
        auth: authorization,
      }),
    )
    .map(({ url, method, contentType, payload, auth }) => ({
      method,
      url,
      headers: {
        authorization: auth,
        ...(contentType === undefined ? {} : { 'content-type': contentType }),
      },
      payload,
    }));

const queryValue = fc.oneof(
  fc.constantFrom(...TASK_STATUSES, 'QUEUED', 'all', 'null', 'undefined', 'true', '[]', '{}'),
  edgeNumberText,
  fc.constantFrom('0x10', '1_000', ' 5', '5 ', '+5', 'Infinity', 'NaN', '1e3', '-0', '0.5', '60.0001'),
  fc.integer({ min: -1, max: 2 ** 53 }).map((n) => (n < 0 ? 'xyz' : encodeCursor(n))),
  fc.bigInt({ min: 0n, max: 10n ** 20n }).map((n) => Buffer.from(`s${n}`).toString('base64url')),
  anyString.map((s) => Buffer.from(s).toString('base64url')),
  urlPart,
);
const queryKey = fc.oneof(
  fc.constantFrom('status', 'action', 'limit', 'cursor', 'wait', 'status', 'limit', 'cursor'),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'a[b]', 'limit[]', ''),
  urlPart,
);
const queryString = fc
  .array(fc.tuple(queryKey, fc.option(queryValue, { nil: undefined, freq: 8 })), { maxLength: 6 })
  .chain((pairs) =>
    fc
      .constantFrom('&', ';', '&&')
      .map((sep) => pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(sep)),
  );

const GET_ROUTES = [
  '/tasks',
  '/tasks',
  '/tasks',
  '/stats',
  '/schedules',
  '/healthz',
  '/metrics',
  '/openapi.json',
  '/',
  '/dashboard',
  '/docs',
  '/dashboard/app.js',
] as const;

const queryRequests = (target: Target): fc.Arbitrary<Req> =>
  fc
    .record({
      path: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...GET_ROUTES) },
        // A finished task, so a valid ?wait answers at once instead of long-polling.
        { weight: 2, arbitrary: fc.constant(`/tasks/${target.finishedId}`) },
        // Unknown ids: the event stream answers 404 at once rather than streaming.
        fc.uuid().map((id) => `/tasks/${id}/events`),
      ),
      query: queryString,
      auth: authorization,
      method: fc.oneof(
        { weight: 10, arbitrary: fc.constant<Method>('GET') },
        fc.constantFrom<Method>('HEAD', 'OPTIONS'),
      ),
    })
    .map(({ path, query, auth, method }) => ({
      method,
      url: `${path}?${query}`,
      headers: { authorization: auth },
    }));

const pathRequests = (target: Target): fc.Arbitrary<Req> =>
  fc
    .record({
      id: taskId(target),
      suffix: fc.constantFrom('', '', '/', '/events', '/cancel', '/retry', '/..', '/%2e%2e', '/x'),
      prefix: fc.constantFrom(
        '/tasks/',
        '/tasks/',
        '/tasks/',
        '/TASKS/',
        '//tasks/',
        '/tasks//',
        '/./tasks/',
        '/tasks/../',
        '',
      ),
      method: fc.constantFrom<Method>('GET', 'GET', 'POST', 'DELETE', 'PUT'),
      auth: authorization,
      wait: fc.option(fc.constantFrom('0', '0.01', '1e-9', '-1', 'x'), { nil: undefined }),
    })
    .filter(({ id, suffix, method, wait }) => {
      // Streams of a real task and long-polls on it last; they are tested for what they are elsewhere.
      const streams = suffix === '/events' && !/^[0-9a-f-]{36}$/i.test(id);
      return !streams && !(wait && method !== 'GET');
    })
    .map(({ id, suffix, prefix, method, auth, wait }) => ({
      method,
      // An empty request target is not HTTP (inject itself throws on it): the root stands in.
      url: `${prefix}${id}${suffix}${wait === undefined ? '' : `?wait=${wait}`}` || '/',
      headers: { authorization: auth },
    }));

const extraHeaders = fc.dictionary(headerName, headerValue, { maxKeys: 4 });
const headerRequests = (target: Target): fc.Arbitrary<Req> =>
  fc
    .record({
      get: fc.boolean(),
      auth: fc.option(authorization, { nil: undefined }),
      contentType: fc.option(contentType, { nil: undefined }),
      contentLength: fc.option(
        fc.oneof(
          fc.nat({ max: 100 }).map(String),
          fc.constantFrom('-1', 'abc', '', '1e3', '0x10', '99999999999999999999'),
        ),
        { nil: undefined },
      ),
      accept: fc.option(
        fc.oneof(
          fc.constantFrom('text/event-stream', 'application/xml', '*/*', 'application/json;q=0'),
          headerValue,
        ),
        { nil: undefined },
      ),
      idempotencyKey: fc.option(
        fc.oneof(
          headerValue,
          fc.constant('k'.repeat(256)),
          fc.constant(''),
          fc.array(headerValue, { minLength: 2, maxLength: 3 }),
        ),
        { nil: undefined },
      ),
      encoding: fc.option(fc.constantFrom('gzip', 'br', 'deflate', 'identity', 'chunked', 'x'), {
        nil: undefined,
      }),
      extra: extraHeaders,
    })
    .map(({ get, auth, contentType, contentLength, accept, idempotencyKey, encoding, extra }) => {
      const headers: Record<string, string | string[]> = { ...extra };
      const set = (name: string, value: string | string[] | undefined) => {
        if (value !== undefined) headers[name] = value;
      };
      set('authorization', auth);
      set('content-type', get ? contentType : (contentType ?? 'application/json'));
      set('content-length', contentLength);
      set('accept', accept);
      set('idempotency-key', idempotencyKey);
      set(encoding === 'chunked' ? 'transfer-encoding' : 'content-encoding', encoding);
      return get
        ? { method: 'GET' as const, url: `/tasks/${target.finishedId}`, headers }
        : {
            method: 'POST' as const,
            url: '/tasks',
            headers,
            payload: '{"action":"uppercase","data":{"text":"hi"}}',
          };
    });

// ---- The suites ----

function fuzzSuite(name: string, open: () => Promise<Target>, skip?: { reason: string }): void {
  describe.skipIf(skip !== undefined)(`fuzzing the API through inject (${name})`, () => {
    let target: Target;
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    beforeAll(async () => {
      process.on('uncaughtException', onCrash).on('unhandledRejection', onCrash);
      target = await open();
    });
    afterAll(async () => {
      process.off('uncaughtException', onCrash).off('unhandledRejection', onCrash);
      await target?.stop();
    });

    const fuzz = (what: string, make: (t: Target) => fc.Arbitrary<Req>, numRuns: number) =>
      it(`${what}: ${numRuns} cases, no 5xx, every 4xx is {error, code}`, async () => {
        tally.clear();
        target.errors.length = 0;
        await fc.assert(
          fc.asyncProperty(make(target), (req) => send(target, req)),
          { seed: SEED, numRuns },
        );
        const counts = [...tally].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`);
        console.log(`${name}, ${what}: ${counts.join(', ')}`);
        expect(target.errors).toEqual([]);
        expect(crashes).toEqual([]);
        await roundTrip(target);
      });

    fuzz('POST bodies and content types', bodyRequests, runs(2500));
    fuzz('query strings', queryRequests, runs(1500));
    fuzz('path parameters', pathRequests, runs(1500));
    fuzz('headers', headerRequests, runs(1500));
  });
}

fuzzSuite('SQLite', () => startTarget());
fuzzSuite(
  'PostgreSQL',
  async () => {
    const pg = isolatedPostgres(postgresTestUrl() as string);
    const target = await startTarget({ driver: pg.driver });
    return { ...target, stop: () => target.stop().finally(() => pg.cleanup()) };
  },
  postgresSkip(),
);

// ---- Raw HTTP over loopback: what inject() cannot send ----

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Splits what a server sent into answers; stops at one it cannot frame (chunked, cut short). The
 * answer to a HEAD request has no body whatever its Content-Length says; interim 1xx are skipped.
 */
function parseAnswers(raw: string, firstIsHead: boolean): Answer[] {
  const answers: Answer[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!status) throw new Error(`not an HTTP answer: ${JSON.stringify(rest.slice(0, 200))}`);
    const headers = Object.fromEntries(
      lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    if (status[1]?.startsWith('1')) {
      rest = rest.slice(end + 4); // an interim answer (100 Continue) has no body and is not the answer
      continue;
    }
    const length = firstIsHead && answers.length === 0 ? 0 : Number(headers['content-length'] ?? NaN);
    if (!Number.isInteger(length)) {
      answers.push({ status: Number(status[1]), headers, body: '' });
      break;
    }
    answers.push({ status: Number(status[1]), headers, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return answers;
}

const lineEnd = fc.oneof({ weight: 6, arbitrary: fc.constant('\r\n') }, fc.constantFrom('\n', '\r', ''));
const rawToken = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('GET', 'POST', 'HEAD') },
  fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'PRI', 'get', ''),
  fc.string({ unit: 'binary-ascii', maxLength: 12 }),
);
const rawTarget = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('/tasks', '/healthz', '/tasks/batch', '/stats') },
  fc.constantFrom(
    '/tasks',
    '/healthz',
    '/stats',
    `/tasks/${'0'.repeat(36)}`,
    '*',
    'http://x/tasks',
    '/tasks/../..',
  ),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.integer({ min: 1000, max: 40_000 }).map((n) => `/tasks?x=${'a'.repeat(n)}`),
);
const rawVersion = fc.constantFrom(
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/0.9',
  'HTTP/1.1x',
  'http/1.1',
  '',
);
const rawHeader = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(headerName, headerValue).map(([n, v]) => `${n}: ${v}`) },
  fc.constantFrom(
    'Content-Length: abc',
    'Content-Length: -1',
    'Content-Length: 1, 2',
    'Content-Length: 99999999999999999999',
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: gzip, chunked',
    'Transfer-Encoding: chunked, identity',
    'Content-Type: application/json',
    'Expect: 100-continue',
    'Connection: upgrade',
    'Upgrade: websocket',
    `Authorization: ${AUTH}`,
    'Host:',
    'Host: a, b',
    ' folded: continuation',
    'no colon here',
    ': empty name',
    'Bad Name: x',
    'X-Nul: a\u0000b',
    'X-Cr: a\rb',
  ),
  fc.integer({ min: 8000, max: 40_000 }).map((n) => `X-Big: ${'b'.repeat(n)}`),
  fc.string({ unit: 'binary-ascii', maxLength: 60 }),
);
const rawBody = fc.oneof(
  fc.constant(''),
  fc.constantFrom('{"action":"sum"}', '0\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\nxx\r\n', '-1\r\n'),
  fc.string({ unit: 'binary-ascii', maxLength: 200 }),
);
const rawRequest = fc
  .record({
    method: rawToken,
    target: rawTarget,
    version: rawVersion,
    headers: fc.array(rawHeader, { maxLength: 6 }),
    host: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)),
    eol: lineEnd,
    body: rawBody,
    length: fc.constantFrom('none', 'exact', 'short', 'long'),
    twice: fc.boolean(),
  })
  .map(({ method, target, version, headers, host, eol, body, length, twice }) => {
    const lengths = {
      none: [],
      exact: [body.length],
      short: [Math.max(0, body.length - 1)],
      long: [body.length + 5],
    };
    const head = [
      `${method} ${target} ${version}`.trimEnd(),
      ...(host ? ['Host: 127.0.0.1'] : []),
      ...headers,
      ...lengths[length].map((n) => `Content-Length: ${n}`),
    ].join(eol);
    const one = `${head}${eol}${eol}${body}`;
    // A second request pipelined behind the first, when the first can be framed.
    return Buffer.from(twice ? `${one}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n` : one, 'latin1');
  });

const FIXED_RAW = [
  'GARBAGE\r\n\r\n',
  '\r\n\r\n\r\n',
  'GET\r\n\r\n',
  'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
  'GET /tasks\u0000 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
  'POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST /tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n',
  `POST /tasks HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n0\r\n\r\n`,
  `GET /tasks HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(70_000)}\r\n\r\n`,
  `GET /${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  `GET /tasks HTTP/1.1\r\nHost: x\r\n${'X-Many: 1\r\n'.repeat(3000)}\r\n`,
  'POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"a"',
  'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', // a TLS ClientHello on the plain port
].map((text) => Buffer.from(text, 'latin1'));

describe('fuzzing raw HTTP over loopback (SQLite)', () => {
  let target: Target;
  beforeAll(async () => {
    target = await startTarget({ listen: true });
  });
  afterAll(() => target?.stop());
  const port = () => target.port ?? 0;

  const check = async (bytes: Buffer) => {
    const head = bytes.toString('latin1', 0, 5) === 'HEAD ';
    const payload = bytes.toString('latin1').slice(0, 300);
    const req: Req = { method: head ? 'HEAD' : 'GET', url: '(raw)', headers: {}, payload };
    const answers = parseAnswers(await exchange(port(), bytes), head);
    if (answers.length === 0) tally.set(0, (tally.get(0) ?? 0) + 1);
    answers.forEach((answer, i) => {
      tally.set(answer.status, (tally.get(answer.status) ?? 0) + 1);
      checkAnswer(i === 0 ? req : { ...req, method: 'GET' }, answer.status, answer.headers, answer.body);
    });
  };

  it(`${FIXED_RAW.length} known malformed requests and ${runs(300)} generated ones: no 5xx, 4xx are {error, code}`, async () => {
    tally.clear();
    for (const bytes of FIXED_RAW) await check(bytes);
    await fc.assert(fc.asyncProperty(rawRequest, check), { seed: SEED, numRuns: runs(300) });
    const counts = [...tally].sort(([a], [b]) => a - b).map(([status, n]) => `${status || 'closed'}: ${n}`);
    console.log(`raw HTTP answers: ${counts.join(', ')}`);
    expect(target.errors).toEqual([]);
    // And the server still answers a normal request over a real socket, at once.
    const startedAt = Date.now();
    const res = await fetch(`http://127.0.0.1:${port()}/tasks`, {
      method: 'POST',
      headers: { authorization: AUTH, 'content-type': 'application/json' },
      body: '{"action":"sum","data":{"numbers":[1]}}',
    });
    expect(res.status).toBe(202);
    expect(Date.now() - startedAt).toBeLessThan(2000);
    await roundTrip(target);
  });
});
