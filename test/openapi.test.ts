/** Every registered route is documented in /openapi.json. */
import { describe, expect, it } from 'vitest';
import { appWithRoutes } from './support/routes.js';

/** Routes left out of the document on purpose: the document itself. */
const UNDOCUMENTED = ['GET /openapi.json'];

describe('GET /openapi.json', () => {
  it('documents every registered route', async () => {
    const { app, routes, close } = await appWithRoutes();
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
      await close();
    }
  });
});
