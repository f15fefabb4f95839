/**
 * The dashboard: plain static files (HTML, vanilla JS modules, CSS; no build step, no CDN) read
 * once at startup and served from memory. The shell is public; every data call it makes goes
 * through the HTTP API with the token the user typed (see static/lib/api.js), so it reads only what
 * the API shows. Every file of static/ is served at /dashboard/<its path>, so a new module (a view
 * in static/views/) needs no line here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Beside this module in src/ and, copied by scripts/copy-static.mjs, in dist/. */
const STATIC_DIR = new URL('./static/', import.meta.url);

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** The pages, at paths of their own (besides /dashboard/<file>). */
const PAGES: Record<string, { paths: string[]; summary: string }> = {
  'index.html': { paths: ['/', '/dashboard'], summary: 'The dashboard' },
  'docs.html': { paths: ['/docs'], summary: 'This API reference, rendered' },
};

/** Every servable file of static/, as paths relative to it ('views/tasks.js'), sorted. */
function staticFiles(): string[] {
  return readdirSync(STATIC_DIR, { recursive: true, encoding: 'utf8' })
    .map((file) => file.split('\\').join('/'))
    .filter((file) => Object.keys(TYPES).some((ext) => file.endsWith(ext)))
    .sort();
}

export function dashboardRoutes(app: FastifyInstance): void {
  for (const file of staticFiles()) {
    const type = TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream';
    const body = readFileSync(new URL(file, STATIC_DIR));
    const page = PAGES[file];
    const paths = page ? page.paths : [`/dashboard/${file}`];
    for (const path of paths) {
      app.get(
        path,
        {
          config: { public: true },
          schema: {
            summary: page?.summary ?? `Dashboard file ${file}`,
            tags: ['dashboard'],
            produces: [type],
            response: {
              200: { description: file, content: { [type]: { schema: { type: 'string' } } } },
            },
          },
        },
        async (_request, reply) =>
          reply
            .type(`${type}; charset=utf-8`)
            // Revalidate each load so an upgraded service never runs an old script against a new API.
            .header('cache-control', 'no-cache')
            .header('x-content-type-options', 'nosniff')
            .send(body),
      );
    }
  }
}
