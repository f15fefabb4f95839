/**
 * Scoped tokens (core/tokens.ts, api/auth.ts, docs/security.md): the grammar, the scope every
 * route declares (walking the route table), 401 against 403 for every route and every scope on
 * both drivers, the old --api-token as an admin, a tokens file, /meta's token, and bad settings
 * stopping `taskq run` with exit 2.
 */
import type { RouteOptions } from 'fastify';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TaskqClient, TaskqForbiddenError } from '../src/client/index.js';
import { ConfigError } from '../src/core/errors.js';
import { allows, combineTokens, parseTokens, SCOPES, type Scope } from '../src/core/tokens.js';
import { cleanupAfterEach, freshDir } from './support/cleanup.js';
import { BOTH_SERVICE_DBS } from './support/drivers.js';
import { runCli } from './support/process.js';
import { appWithRoutes } from './support/routes.js';
import { startTestApp, type TestApp } from './support/service.js';

const defer = cleanupAfterEach();

/** The scope of every route that is not public. A new route must be added here, on purpose. */
const EXPECTED: Record<string, Scope> = {
  'GET /openapi.json': 'read',
  'GET /metrics': 'read',
  'POST /tasks': 'enqueue',
  'GET /tasks': 'read',
  'POST /tasks/batch': 'enqueue',
  'GET /tasks/:id': 'read',
  'GET /tasks/:id/events': 'read',
  'POST /tasks/:id/cancel': 'operate',
  'POST /tasks/:id/retry': 'operate',
  'GET /stats': 'read',
  'GET /events/stats': 'read',
  'GET /schedules': 'read',
  'POST /schedules/:name/pause': 'operate',
  'POST /schedules/:name/resume': 'operate',
  'POST /schedules/:name/run': 'operate',
  'GET /actions': 'read',
  'POST /actions/:action/pause': 'operate',
  'POST /actions/:action/resume': 'operate',
  'POST /tasks/bulk': 'operate',
  'GET /operations/:id': 'read',
  'GET /operations/:id/events': 'read',
  'GET /meta': 'read',
  'GET /nodes': 'read',
  'GET /audit': 'admin',
};

/** One token per scope, named after it. */
const SECRETS: Record<Scope, string> = {
  read: 'reader-secret-1',
  enqueue: 'producer-secret-1',
  operate: 'operator-secret-1',
  admin: 'admin-secret-000',
};
const TOKENS = SCOPES.map((s) => `${s}:${s}:${SECRETS[s]}`).join(';');
const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

describe('the token grammar', () => {
  it('reads NAME:SCOPES:SECRET entries separated by spaces, newlines or ";", with comment lines', () => {
    const tokens = parseTokens(
      '# ops team\nalice:operate:alice-secret-1 ; ci:enqueue,read:ci-secret-with:colon\n  # old\nroot:admin:root-secret-1',
      '--tokens',
    );
    expect(tokens.map((t) => [t.name, t.scopes, t.secret])).toEqual([
      ['alice', ['read', 'operate'], 'alice-secret-1'],
      ['ci', ['read', 'enqueue'], 'ci-secret-with:colon'],
      ['root', ['read', 'enqueue', 'operate', 'admin'], 'root-secret-1'],
    ]);
  });

  it('makes admin imply every scope and operate and enqueue imply read, nothing more', () => {
    const [reader, producer, operator, admin] = parseTokens(TOKENS, 't');
    expect(reader?.scopes).toEqual(['read']);
    expect(producer?.scopes).toEqual(['read', 'enqueue']);
    expect(operator?.scopes).toEqual(['read', 'operate']);
    expect(admin?.scopes).toEqual([...SCOPES]);
    expect(allows(operator?.scopes ?? [], 'enqueue')).toBe(false);
    expect(allows(producer?.scopes ?? [], 'operate')).toBe(false);
  });

  it.each([
    ['alice:operate', /entry 1: expected NAME:SCOPE/],
    ['alice:root:alice-secret-1', /entry 1 \(alice\): "root" is not a scope/],
    ['ok:read:ok-secret-1 bob:read:short', /entry 2 \(bob\): the secret must be at least 8/],
    ['b@d:read:secret-secret', /entry 1: the name must be/],
    ['alice:read,:alice-secret-1', /"" is not a scope/],
    ['  # only a comment\n', /no tokens/],
  ])('refuses %j in one line, never echoing a secret', (text, message) => {
    expect(() => parseTokens(text, '--tokens (TASKQ_TOKENS)')).toThrow(message);
    try {
      parseTokens(text, '--tokens (TASKQ_TOKENS)');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain('secret-1');
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('refuses a name or a secret given twice, the old api-token included', () => {
    const a = parseTokens('a:read:secret-aaaa', 'x');
    expect(() => combineTokens({ tokens: a, fileTokens: parseTokens('a:admin:secret-bbbb', 'f') })).toThrow(
      /"a" is given twice/,
    );
    expect(() => combineTokens({ tokens: a, fileTokens: parseTokens('b:admin:secret-aaaa', 'f') })).toThrow(
      /"b" has the same secret/,
    );
    expect(() =>
      combineTokens({ apiToken: 'x', tokens: parseTokens('api-token:read:secret-cc', 't') }),
    ).toThrow(/"api-token" is given twice/);
    expect(combineTokens({ apiToken: 'old-one' })).toEqual([
      { name: 'api-token', scopes: [...SCOPES], secret: 'old-one' },
    ]);
  });
});

describe('the route table', () => {
  let routes: RouteOptions[] = [];
  beforeAll(async () => {
    const routed = await appWithRoutes();
    routes = routed.routes;
    await routed.close();
  });

  const keyOf = (r: RouteOptions) => `${String(r.method)} ${r.url}`;

  it('gives every route that is not public the scope the docs say, and HEAD routes their GET scope', () => {
    const scoped = routes.filter((r) => !r.config?.public && r.method !== 'HEAD');
    expect(Object.fromEntries(scoped.map((r) => [keyOf(r), r.config?.scope]))).toEqual(EXPECTED);
    for (const head of routes.filter((r) => r.method === 'HEAD' && !r.config?.public))
      expect(head.config?.scope, keyOf(head)).toBe(EXPECTED[`GET ${head.url}`]);
    // Public routes only read: /healthz and the dashboard's static files.
    const open = routes.filter((r) => r.config?.public);
    expect(open.map(keyOf)).toContain('GET /healthz');
    expect(open.filter((r) => r.method !== 'GET' && r.method !== 'HEAD').map(keyOf)).toEqual([]);
  });

  it('audits every state-changing operator route, and nothing else', () => {
    for (const r of routes) {
      const operator = r.method === 'POST' && (r.config?.scope === 'operate' || r.config?.scope === 'admin');
      expect(r.config?.audit !== undefined, keyOf(r)).toBe(operator);
    }
  });

  it('refuses to register a route without a scope', async () => {
    await expect(appWithRoutes((app) => app.get('/forgotten', async () => 'x'))).rejects.toThrow(
      /GET \/forgotten declares neither config.scope nor config.public/,
    );
  });

  describe.each(BOTH_SERVICE_DBS)('on %s', (_name, database, skip) => {
    let app: TestApp;
    beforeAll(async () => {
      if (skip) return;
      const { db, cleanup } = database();
      app = await startTestApp({ db, tokens: TOKENS });
      return async () => {
        await app.stop();
        await cleanup();
      };
    });

    it.skipIf(skip)(
      'answers 401 without a valid token and 403 naming the token and scope without the scope',
      async () => {
        const urlOf = (url: string) =>
          url.replace(':id', '0196a6b1-0000-7000-8000-000000000000').replace(/:(action|name)/, 'nothing');
        for (const [route, needed] of Object.entries(EXPECTED)) {
          const [method, url] = route.split(' ') as [string, string];
          const path = urlOf(url);
          for (const headers of [{}, bearer('wrong-secret-1'), { authorization: SECRETS.admin }]) {
            const res = await app.http(path, { method, headers });
            expect(res.status, `${route} ${JSON.stringify(headers)}`).toBe(401);
            expect(res.body.code).toBe('TQ_ERR_UNAUTHORIZED');
          }
          for (const scope of SCOPES) {
            const granted = parseTokens(`${scope}:${scope}:${SECRETS[scope]}`, 't')[0]?.scopes ?? [];
            if (allows(granted, needed)) {
              if (url.includes('/events')) continue; // a stream: it would not end
              const res = await app.http(path, { method, headers: bearer(SECRETS[scope]) });
              expect([401, 403], `${route} as ${scope}`).not.toContain(res.status);
            } else {
              const res = await app.http(path, { method, headers: bearer(SECRETS[scope]) });
              expect(res.status, `${route} as ${scope}`).toBe(403);
              expect(res.body).toEqual({
                code: 'TQ_ERR_FORBIDDEN',
                error: `token '${scope}' lacks scope '${needed}'`,
              });
            }
          }
        }
        expect((await app.http('/healthz')).status).toBe(200);
        expect((await app.http('/dashboard/app.js')).status).toBe(200);
      },
    );

    it.skipIf(skip)('lets an operator bulk retry and cancel but not delete, which needs admin', async () => {
      const bulk = (op: string, secret: string) =>
        app.http('/tasks/bulk', {
          method: 'POST',
          headers: bearer(secret),
          json: { op, filter: { status: 'failed' }, dry_run: true },
        });
      expect((await bulk('retry', SECRETS.operate)).status).toBe(200);
      expect((await bulk('cancel', SECRETS.operate)).status).toBe(200);
      const refused = await bulk('delete', SECRETS.operate);
      expect(refused.status).toBe(403);
      expect(refused.body.error).toBe("token 'operate' lacks scope 'admin'");
      expect((await bulk('delete', SECRETS.admin)).status).toBe(200);
    });

    it.skipIf(skip)(
      "says in /meta which token asked and what it may do; the client's typed 403",
      async () => {
        const meta = async (scope: Scope) =>
          (await app.http('/meta', { headers: bearer(SECRETS[scope]) })).body.token;
        expect(await meta('read')).toEqual({ name: 'read', scopes: ['read'] });
        expect(await meta('operate')).toEqual({ name: 'operate', scopes: ['read', 'operate'] });
        expect(await meta('admin')).toEqual({ name: 'admin', scopes: [...SCOPES] });
        const client = new TaskqClient({
          baseUrl: 'http://taskq.test',
          token: SECRETS.read,
          fetch: async (input, init) => {
            const url = new URL(String(input));
            const res = await app.http(`${url.pathname}${url.search}`, {
              method: init?.method,
              headers: init?.headers as Record<string, string>,
            });
            return new Response(JSON.stringify(res.body), { status: res.status });
          },
        });
        expect((await client.meta()).token?.name).toBe('read');
        const err = await client.pauseAction('send-email').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TaskqForbiddenError);
        expect((err as TaskqForbiddenError).code).toBe('TQ_ERR_FORBIDDEN');
      },
    );
  });
});

describe.each(BOTH_SERVICE_DBS)('token sources on %s', (_name, database, skip) => {
  async function start(overrides: Record<string, string>) {
    const { db, cleanup } = database();
    const app = await startTestApp({ db, ...overrides });
    defer(async () => {
      await app.stop();
      await cleanup();
    });
    return app;
  }

  it.skipIf(skip)('keeps the old --api-token working as an admin token named api-token', async () => {
    const { http } = await start({ apiToken: 'old-single-token' });
    const headers = bearer('old-single-token');
    expect((await http('/meta', { headers })).body.token).toEqual({ name: 'api-token', scopes: [...SCOPES] });
    expect((await http('/audit', { headers })).status).toBe(200);
    expect((await http('/audit')).status).toBe(401);
  });

  it.skipIf(skip)('reads a tokens file with comments, beside --tokens', async () => {
    const file = join(freshDir(defer), 'tokens');
    writeFileSync(
      file,
      '# the on-call team\nalice:operate:alice-secret-1\n\n# CI\nci:enqueue:ci-secret-000\n',
    );
    const { http } = await start({ tokensFile: file, tokens: 'root:admin:root-secret-1' });
    expect((await http('/meta', { headers: bearer('alice-secret-1') })).body.token.name).toBe('alice');
    expect((await http('/meta', { headers: bearer('root-secret-1') })).body.token.name).toBe('root');
    const enqueue = await http('/tasks', {
      method: 'POST',
      headers: bearer('ci-secret-000'),
      json: { action: 'noop' },
    });
    expect(enqueue.status).toBe(202);
    const cancel = await http(`/tasks/${enqueue.body.id}/cancel`, {
      method: 'POST',
      headers: bearer('ci-secret-000'),
    });
    expect(cancel.status).toBe(403);
  });

  it.skipIf(skip)('says token null in /meta when the service runs without tokens', async () => {
    const { http } = await start({});
    expect((await http('/meta')).body.token).toBeNull();
  });
});

describe('bad token settings', () => {
  it.each([
    [
      ['--tokens', 'alice:root:alice-secret-1'],
      /^taskq: --tokens \(flag\): entry 1 \(alice\): "root" is not a scope/,
    ],
    [
      ['--tokens-file', '/nonexistent/tokens'],
      /^taskq: --tokens-file: cannot read \/nonexistent\/tokens: ENOENT/,
    ],
    [['--tokens', 'a:read:secret-aaaa b:read:secret-aaaa'], /^taskq: tokens: "b" has the same secret/],
  ])('taskq run %j exits 2 with one line', (args, message) => {
    const dir = freshDir(defer);
    const { code, stderr } = runCli(['run', '--db', join(dir, 'tasks.db'), '--port', '0', ...args]);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('reads TASKQ_TOKENS from the environment and names it in the error', () => {
    const dir = freshDir(defer);
    const { code, stderr } = runCli(['run', '--db', join(dir, 'tasks.db'), '--port', '0'], {
      TASKQ_TOKENS: 'x:read',
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^taskq: --tokens \(TASKQ_TOKENS\): entry 1: expected NAME:SCOPE/);
  });
});
