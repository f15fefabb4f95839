/**
 * Scoped API tokens (core/tokens.ts, docs/security.md). With any token set, every route requires
 * `Authorization: Bearer <secret>` of one of them (else 401), except routes that declare
 * `config: { public: true }`: /healthz (load balancers have no token) and the dashboard's static
 * shell (it holds no data; its data calls send the token). Then the token must have the route's
 * scope (else 403 naming the token and the scope).
 *
 * Every other route declares its scope, `config: { scope: 'read' | 'enqueue' | 'operate' |
 * 'admin' }`: registering one without is an error at start-up, so no route is left to a default.
 * A route whose scope depends on its body (POST /tasks/bulk: delete needs admin) checks the rest
 * itself with `requireScope`. Without tokens nothing is checked and `request.token` is null.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConfigError, QueueError } from '../core/errors.js';
import { allows, parseTokens, type ApiToken, type Scope } from '../core/tokens.js';
import type { AuditNote } from '../queue/audit.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without a token even when tokens are set. */
    public?: boolean;
    /** The scope a token needs for the route; every non-public route declares one. */
    scope?: Scope;
    /** The audit log's name for what the route does (`tasks.retry`): its calls are recorded (api/audit.ts). */
    audit?: string;
  }
  interface FastifyRequest {
    /** The token the request authenticated with; null when no tokens are set. */
    token: ApiToken | null;
    /** What the route adds to its audit entry (a bulk operation's filter and count). */
    audit: AuditNote | null;
  }
}

// Digests have equal length whatever was sent, so the comparison takes the same time for any guess.
const digest = (text: string) => createHash('sha256').update(text).digest();

/** The bearer secret of an Authorization header; '' when there is none. */
function bearerOf(header: string | undefined): string {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? '';
}

/**
 * The token whose secret the header carries. Every token is compared, in constant time each, so
 * the time taken says nothing of which one (or how much of one) matched.
 */
export function tokenOf(tokens: readonly ApiToken[], header: string | undefined): ApiToken | null {
  const sent = digest(bearerOf(header));
  let found: ApiToken | null = null;
  for (const token of tokens) {
    if (timingSafeEqual(digest(token.secret), sent)) found = token;
  }
  return bearerOf(header) === '' ? null : found;
}

/** 403 unless the request's token has `scope` (nothing to check without tokens). */
export function requireScope(request: FastifyRequest, scope: Scope): void {
  const token = request.token;
  if (token && !allows(token.scopes, scope)) {
    throw new QueueError('TQ_ERR_FORBIDDEN', `token '${token.name}' lacks scope '${scope}'`);
  }
}

/** The tokens of a `--tokens-file`; a file that cannot be read is a bad setting too. */
export function readTokensFile(path: string): ApiToken[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `--tokens-file: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return parseTokens(text, `--tokens-file ${path}`);
}

export function installAuth(app: FastifyInstance, tokens: readonly ApiToken[]): void {
  app.decorateRequest('token', null);
  app.decorateRequest('audit', null);
  app.addHook('onRoute', (route) => {
    if (!route.config?.public && route.config?.scope === undefined)
      throw new Error(`${String(route.method)} ${route.url} declares neither config.scope nor config.public`);
  });
  if (tokens.length === 0) return;
  app.addHook('onRequest', async (request) => {
    const { config } = request.routeOptions;
    if (config.public) return;
    const token = tokenOf(tokens, request.headers.authorization);
    if (!token) {
      throw new QueueError(
        'TQ_ERR_UNAUTHORIZED',
        'missing or wrong API token; send Authorization: Bearer <token>',
      );
    }
    request.token = token;
    // Unmatched routes (404) declare nothing: any valid token may learn that they do not exist.
    if (config.scope !== undefined) requireScope(request, config.scope);
  });
}
