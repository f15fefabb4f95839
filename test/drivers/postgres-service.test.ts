/**
 * Real services on PostgreSQL. One is reached through a TCP proxy the test can cut: while the
 * database is unreachable the API answers 503 quickly instead of hanging, and recovers when it
 * returns. Two others share a schema as an API node and a worker node.
 */
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { resolveConfig } from '../../src/core/config.js';
import { PostgresDriver } from '../../src/drivers/postgres/postgres-driver.js';
import { TaskqNode } from '../../src/service.js';
import pg from 'pg';
import { eventually, finished, http } from '../support/service.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from '../support/postgres.js';
import { tcpProxy, throughProxy } from '../support/proxy.js';

const skip = postgresSkip();
const test = skip ? it.skip : it;

async function query(url: string, text: string, values: unknown[]) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query<{ n: number }>(text, values);
  } finally {
    await client.end();
  }
}

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

test('the API answers 503 while PostgreSQL is unreachable, and recovers', async () => {
  const url = new URL(postgresTestUrl() as string);
  const link = await tcpProxy(url);
  const proxied = throughProxy(url, link);
  const schema = randomSchema();
  const driver = new PostgresDriver({ connectionString: proxied.toString(), poolSize: 2, schema });
  const config = resolveConfig(
    { port: 0, host: '127.0.0.1', logLevel: 'silent', role: 'api', db: proxied.toString() },
    {},
  );
  const service = await TaskqNode.create({ config, logger: pino({ level: 'silent' }), driver });
  const base = await service.start();
  stop = async () => {
    await service.stop();
    await link.cut().catch(() => {});
    await dropSchema(url.toString(), schema);
  };

  const created = await http(`${base}/tasks`, { method: 'POST', json: { action: 'echo', data: {} } });
  expect(created.status).toBe(202);
  const id = created.body.id as string;

  await link.cut();
  const started = Date.now();
  const read = await http(`${base}/tasks/${id}`);
  expect(read.status).toBe(503);
  expect(read.body.code).toBe('TQ_ERR_UNAVAILABLE');
  expect((await http(`${base}/healthz`)).status).toBe(503);
  expect(Date.now() - started).toBeLessThan(8000);

  await link.restore();
  const again = await http(`${base}/tasks/${id}`);
  expect(again.status).toBe(200);
  expect(again.body.id).toBe(id);
});

test('a worker in another process picks up a task at once through NOTIFY', async () => {
  const url = postgresTestUrl() as string;
  const schema = randomSchema();
  const services: TaskqNode[] = [];
  stop = async () => {
    for (const s of services) await s.stop();
    await dropSchema(url, schema);
  };
  const start = async (role: 'api' | 'worker') => {
    // pollMs is a minute: only a notification can make the worker claim within the test.
    const config = resolveConfig(
      { port: 0, host: '127.0.0.1', logLevel: 'silent', role, db: url, pollMs: 60_000 },
      {},
    );
    const driver = new PostgresDriver({ connectionString: url, poolSize: 2, schema });
    const service = await TaskqNode.create({ config, logger: pino({ level: 'silent' }), driver });
    services.push(service);
    return service.start();
  };
  const api = await start('api');
  await start('worker');
  // LISTEN connections open in the background, one per node (the API's listens for long-polls
  // and event streams); wait until both are there. Nothing announces a LISTEN taking effect, so
  // PostgreSQL's own view of it is polled.
  const listening = async () => {
    const { rows } = await query(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE $1`, [
      `LISTEN "tq_:${schema}"`,
    ]);
    return rows[0]?.n === 2;
  };
  await eventually(listening, 20_000);

  const created = await http(`${api}/tasks`, {
    method: 'POST',
    json: { action: 'uppercase', data: { text: 'hi' } },
  });
  expect(created.status).toBe(202);
  // By long-poll, which the worker node's NOTIFY wakes: 20 s is still far below the 60 s poll,
  // so only NOTIFY can explain the claim.
  const done = await finished((path) => http(`${api}${path}`), created.body.id as string, 20);
  expect(done.status).toBe('completed');
  expect(done.result).toEqual({ output: 'HI' });
});
