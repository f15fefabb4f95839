/** Starts a real service (real SQLite file, real HTTP server on an ephemeral port) for a test. */
import { pino } from 'pino';
import { resolveConfig, type ConfigInput } from '../../src/core/config.js';
import type { HandlerDefinition } from '../../src/handlers/handler.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { TaskqNode } from '../../src/service.js';
import { tempDbPath } from './temp.js';

export interface TestService {
  service: TaskqNode;
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
  const service = await TaskqNode.create({ config, logger: pino({ level: config.logLevel }), handlers });
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
  // Tests read whatever JSON the server sent and assert on it field by field.
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
