/**
 * API tokens. With `apiToken` set, every route requires `Authorization: Bearer <token>`, except
 * routes that declare `config: { public: true }`: /healthz (load balancers have no token) and the
 * dashboard's static shell (it holds no data; its data calls send the token).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../core/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without a token even when apiToken is set. */
    public?: boolean;
    /** The scope a token needs for the route (operator actions say 'operate'); audited. */
    scope?: 'read' | 'enqueue' | 'operate' | 'admin';
  }
}

// Digests have equal length whatever was sent, so the comparison takes the same time for any guess.
const digest = (text: string) => createHash('sha256').update(text).digest();

export function tokenMatches(expected: string, header: string | undefined): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  // Compare even without a match, so a missing header costs the same as a wrong one.
  return timingSafeEqual(digest(expected), digest(match?.[1] ?? '')) && match !== null;
}

export function installAuth(app: FastifyInstance, apiToken: string | undefined): void {
  if (!apiToken) return;
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.public) return;
    if (!tokenMatches(apiToken, request.headers.authorization)) {
      throw new QueueError(
        'TQ_ERR_UNAUTHORIZED',
        'missing or wrong API token; send Authorization: Bearer <token>',
      );
    }
  });
}
