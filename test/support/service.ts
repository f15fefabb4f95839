/**
 * A real service (real SQLite file) for a test: `startTestApp` drives its HTTP app through
 * Fastify's inject(), with no socket; `startTestService` listens on an ephemeral port, for tests
 * about sockets, streams over a real connection, browsers and other processes.
 */
import { expect } from 'vitest';
import { pino } from 'pino';
import { resolveConfig, type ConfigInput } from '../../src/core/config.js';
import type { HandlerDefinition } from '../../src/handlers/handler.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { TaskqNode } from '../../src/service.js';
import { tempDbPath } from './temp.js';

export interface HttpInit {
  method?: string;
  headers?: Record<string, string>;
  /** Sent as the JSON body, with its content type. */
  json?: unknown;
  body?: string;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  // Tests read whatever JSON the server sent and assert on it field by field.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** One request to the service under test, by path ('/tasks'); returns status, headers, parsed body. */
export type Http = (path: string, init?: HttpInit) => Promise<HttpResponse>;

export interface TestApp {
  service: TaskqNode;
  http: Http;
  stop: () => Promise<void>;
}

export interface TestService extends TestApp {
  url: string;
}

async function createNode(
  overrides: ConfigInput,
  handlers: HandlerDefinition[],
): Promise<{ service: TaskqNode; stop: () => Promise<void> }> {
  const db = overrides.db === undefined ? tempDbPath() : { path: String(overrides.db), cleanup: () => {} };
  const config = resolveConfig(
    { port: 0, host: '127.0.0.1', logLevel: 'silent', ...overrides, db: db.path },
    {},
  );
  const service = await TaskqNode.create({ config, logger: pino({ level: config.logLevel }), handlers });
  return {
    service,
    stop: async () => {
      await service.stop();
      db.cleanup();
    },
  };
}

/** A node whose app answers through inject(): everything TaskqNode.start does but listen. */
export async function startTestApp(
  overrides: ConfigInput = {},
  handlers: HandlerDefinition[] = [],
): Promise<TestApp> {
  const { service, stop } = await createNode(overrides, handlers);
  await service.app.ready();
  service.startBackground();
  return { service, stop, http: (path, init) => injectHttp(service, path, init) };
}

/** A node listening on an ephemeral port of 127.0.0.1. */
export async function startTestService(
  overrides: ConfigInput = {},
  handlers: HandlerDefinition[] = [],
): Promise<TestService> {
  const { service, stop } = await createNode(overrides, handlers);
  const url = await service.start();
  return { service, url, stop, http: (path, init) => http(`${url}${path}`, init) };
}

function jsonHeaders(init: HttpInit): Record<string, string> {
  return {
    ...(init.json === undefined ? {} : { 'content-type': 'application/json' }),
    ...(init.headers ?? {}),
  };
}

function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON: keep the text
  }
}

async function injectHttp(service: TaskqNode, path: string, init: HttpInit = {}): Promise<HttpResponse> {
  const res = await service.app.inject({
    method: (init.method ?? 'GET') as 'GET',
    url: path,
    headers: jsonHeaders(init),
    ...(init.json === undefined
      ? init.body === undefined
        ? {}
        : { payload: init.body }
      : { payload: JSON.stringify(init.json) }),
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, String(one));
  }
  return { status: res.statusCode, headers, body: parsed(res.body) };
}

/** fetch + JSON in one call, to a real URL; returns status, headers and parsed body. */
export async function http(url: string, init: RequestInit & { json?: unknown } = {}): Promise<HttpResponse> {
  const { json, ...rest } = init;
  const response = await fetch(url, {
    ...rest,
    headers: {
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
      ...(rest.headers ?? {}),
    },
    body: json === undefined ? rest.body : JSON.stringify(json),
  });
  return { status: response.status, headers: response.headers, body: parsed(await response.text()) };
}

type Falsy = null | undefined | false | 0 | '';

/** Polls `check` until it returns a truthy value (which it resolves with) or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<Exclude<Awaited<T>, Falsy>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<Awaited<T>, Falsy>;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves once nothing is queued or running in the driver's database (every task finished). */
export async function drained(driver: QueueDriver, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () => {
      const { byStatus } = await driver.countTasks();
      return byStatus.queued + byStatus.running === 0;
    },
    timeoutMs,
    100,
  );
}

/**
 * The task once it has finished, by the API's long-poll (GET /tasks/:id?wait=): woken by the
 * change itself, where polling its status would sleep between reads.
 */
export async function finished(request: Http, id: string, waitSeconds = 30): Promise<HttpResponse['body']> {
  const res = await request(`/tasks/${id}?wait=${waitSeconds}`);
  if (res.status !== 200) throw new Error(`GET /tasks/${id} answered ${res.status}`);
  return res.body;
}

/** The task's status as the API shows it now. */
export async function statusOf(request: Http, id: string): Promise<string> {
  return (await request(`/tasks/${id}`)).body.status as string;
}

/**
 * A suite's API calls with a bearer token, and a POST /tasks that expects its 202 and returns the
 * id. `service` is read on each call: suites assign it in beforeAll.
 */
export function withToken(service: () => TestService, token: string) {
  const auth = { authorization: `Bearer ${token}` };
  const api: Http = (path, init = {}) =>
    service().http(path, { ...init, headers: { ...auth, ...init.headers } });
  const post = async (body: object): Promise<string> => {
    const res = await api('/tasks', { method: 'POST', json: body });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  return { api, post };
}
