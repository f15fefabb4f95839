/** Every registered route is documented in /openapi.json. */
import type { RouteOptions } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/api/app.js';
import { dashboardRoutes } from '../src/dashboard/routes.js';
import { openDriver } from '../src/drivers/open-driver.js';
import { BUILTIN_HANDLERS } from '../src/handlers/builtin.js';
import { HandlerRegistry } from '../src/handlers/registry.js';
import { TaskQueue } from '../src/queue/queue.js';
import { tempDbPath } from './support/temp.js';

/** Routes left out of the document on purpose: the document itself. */
const UNDOCUMENTED = ['GET /openapi.json'];

describe('GET /openapi.json', () => {
  it('documents every registered route', async () => {
    const db = tempDbPath();
    const driver = await openDriver({ db: db.path, sync: 'normal', pgPoolSize: 1 });
    await driver.migrate();
    const queue = new TaskQueue({
      driver,
      registry: new HandlerRegistry([...BUILTIN_HANDLERS], false),
      defaultMaxAttempts: 3,
    });
    const routes: RouteOptions[] = [];
    const app = await buildApp({
      queue,
      logger: pino({ level: 'silent' }),
      role: 'all',
      pages: dashboardRoutes,
      onRoute: (r) => routes.push(r),
    });
    try {
      const doc = (await app.inject({ url: '/openapi.json' })).json();
      expect(doc.openapi).toBe('3.1.0');
      const registered = routes.flatMap((r) =>
        (Array.isArray(r.method) ? r.method : [r.method]).map((m) => `${m} ${r.url}`),
      );
      // Fastify adds a HEAD route beside each GET; the document need not repeat them.
      const relevant = registered.filter((r) => !r.startsWith('HEAD '));
      expect(relevant.length).toBeGreaterThan(10);
      const missing = relevant.filter((route) => {
        const [method, url] = route.split(' ') as [string, string];
        const path = url.replace(/:(\w+)/g, '{$1}');
        return doc.paths[path]?.[method.toLowerCase()] === undefined;
      });
      expect(missing).toEqual(UNDOCUMENTED);
      for (const route of [
        'POST /tasks/{id}/cancel',
        'POST /tasks/{id}/retry',
        'GET /stats',
        'GET /metrics',
        'GET /meta',
      ]) {
        const [method, path] = route.split(' ') as [string, string];
        expect(doc.paths[path][method.toLowerCase()].summary, route).toBeTruthy();
      }
      // The W3C trace headers of the producing routes (docs/tracing.md).
      for (const path of ['/tasks', '/tasks/batch']) {
        const headers = (doc.paths[path].post.parameters as { in: string; name: string }[])
          .filter((p) => p.in === 'header')
          .map((p) => p.name);
        expect(headers, path).toEqual(expect.arrayContaining(['traceparent', 'tracestate']));
      }
    } finally {
      await app.close();
      await driver.close();
      db.cleanup();
    }
  });
});
