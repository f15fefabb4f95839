/**
 * The dashboard: plain static files (HTML, vanilla JS, CSS; no build step, no CDN) read once at
 * startup and served from memory. The shell is public; every data call it makes goes through the
 * HTTP API with the token the user typed (see static/app.js), so it reads only what the API shows.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Beside this module in src/ and, copied by scripts/copy-static.mjs, in dist/. */
const STATIC_DIR = new URL('./static/', import.meta.url);

const ASSETS: { paths: string[]; file: string; type: string; summary: string }[] = [
  { paths: ['/', '/dashboard'], file: 'index.html', type: 'text/html', summary: 'The dashboard' },
  { paths: ['/docs'], file: 'docs.html', type: 'text/html', summary: 'This API reference, rendered' },
  { paths: ['/dashboard/app.js'], file: 'app.js', type: 'text/javascript', summary: 'Dashboard script' },
  {
    paths: ['/dashboard/docs.js'],
    file: 'docs.js',
    type: 'text/javascript',
    summary: 'API reference script',
  },
  { paths: ['/dashboard/style.css'], file: 'style.css', type: 'text/css', summary: 'Dashboard styles' },
];

export function dashboardRoutes(app: FastifyInstance): void {
  for (const asset of ASSETS) {
    const body = readFileSync(new URL(asset.file, STATIC_DIR));
    for (const path of asset.paths) {
      app.get(
        path,
        {
          config: { public: true },
          schema: {
            summary: asset.summary,
            tags: ['dashboard'],
            produces: [asset.type],
            response: {
              200: { description: asset.file, content: { [asset.type]: { schema: { type: 'string' } } } },
            },
          },
        },
        async (_request, reply) =>
          reply
            .type(`${asset.type}; charset=utf-8`)
            // Revalidate each load so an upgraded service never runs an old script against a new API.
            .header('cache-control', 'no-cache')
            .header('x-content-type-options', 'nosniff')
            .send(body),
      );
    }
  }
}
