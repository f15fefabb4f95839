/** Starts a real service (real SQLite file, real HTTP server on an ephemeral port) for a test. */
import { pino } from 'pino';
import { resolveConfig, type ConfigInput } from '../../src/core/config.js';
import type { HandlerDefinition } from '../../src/handlers/handler.js';
import { Service } from '../../src/service.js';
import { tempDbPath } from './temp.js';

export interface TestService {
  service: Service;
  url: string;
  stop: () => Promise<void>;
}

export async function startTestService(
  overrides: ConfigInput = {},
  handlers: HandlerDefinition[] = [],
): Promise<TestService> {
  const db = overrides.db === undefined ? tempDbPath() : { path: String(overrides.db), cleanup: () => {} };
  const config = resolveConfig(
    { port: 0, host: '127.0.0.1', logLevel: 'silent', ...overrides, db: db.path },
    {},
  );
  const service = await Service.create({ config, logger: pino({ level: config.logLevel }), handlers });
  const url = await service.start();
  return {
    service,
    url,
    stop: async () => {
      await service.stop();
      db.cleanup();
    },
  };
}

/** fetch + JSON in one call; returns status, headers and parsed body. */
export async function http(
  url: string,
  init: RequestInit & { json?: unknown } = {},
  // any: tests read whatever fields the response under test has; a wrong guess fails the assertion.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; headers: Headers; body: any }> {
  const { json, ...rest } = init;
  const response = await fetch(url, {
    ...rest,
    headers: {
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
      ...(rest.headers ?? {}),
    },
    body: json === undefined ? rest.body : JSON.stringify(json),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
