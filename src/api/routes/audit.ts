/**
 * The audit log over HTTP (queue/audit.ts, docs/security.md). `installAudit` adds the one hook
 * that writes it: every route that declares `config.audit` (the operator routes, scope operate
 * or admin; test/tokens.test.ts checks that each such route does) gets an entry once its answer
 * is made, refusals included (403, 404, 409), with the token's name, the route, the target (its
 * first parameter, or what the route put in `request.audit`) and the status. A 401 is not
 * recorded: its caller is nobody the log could name, and unauthenticated requests must not be
 * able to fill the table. GET /audit lists the entries, newest first, for admin tokens.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify';
import type { AuditRecord } from '../../queue/audit.js';
import type { TaskQueue } from '../../queue/queue.js';
import { AuditList, AuditQuery, type AuditEntryItem } from '../console-schemas.js';
import { ErrorSchema } from '../schemas.js';

export const toAuditView = (e: AuditRecord): AuditEntryItem => ({
  id: String(e.seq),
  at: new Date(e.at).toISOString(),
  token: e.token,
  method: e.method,
  route: e.route,
  action: e.action,
  target: e.target,
  detail: e.detail,
  status: e.status,
});

/** The value of the route's first parameter (`/tasks/:id` → the id), if it has one. */
function firstParam(request: FastifyRequest): string | null {
  const params = request.params;
  if (!params || typeof params !== 'object') return null;
  const value = Object.values(params)[0];
  return typeof value === 'string' ? value : null;
}

export function installAudit(app: FastifyInstance, queue: TaskQueue): void {
  const record = async (request: FastifyRequest, reply: FastifyReply) => {
    const action = request.routeOptions.config.audit;
    if (action === undefined || reply.statusCode === 401) return;
    const note = request.audit;
    if (note?.changedNothing && reply.statusCode < 400) return;
    try {
      await queue.audit.record({
        at: Date.now(),
        token: request.token?.name ?? null,
        method: request.method,
        route: request.routeOptions.url ?? request.url,
        action: note?.action ?? action,
        target: note?.target !== undefined ? note.target : firstParam(request),
        detail: note?.detail ?? null,
        status: reply.statusCode,
      });
    } catch (err) {
      // The action is done (or refused) already: its answer stands, the failure is logged loudly.
      request.log.error({ err, action, status: reply.statusCode }, 'writing the audit log failed');
    }
  };
  // onSend of each audited route: the entry is written before the answer leaves, so whoever got
  // the answer finds it. Added per route, not app-wide: an app-wide onSend hook breaks Fastify's
  // fallback 404 for a method it does not route (the answer is never sent).
  const hook: onSendHookHandler = async (request, reply, payload) => {
    await record(request, reply);
    return payload;
  };
  app.addHook('onRoute', (route) => {
    if (route.config?.audit === undefined) return;
    const own = route.onSend === undefined ? [] : Array.isArray(route.onSend) ? route.onSend : [route.onSend];
    route.onSend = [...own, hook];
  });
}

export function auditRoutes(app: FastifyInstance, queue: TaskQueue): void {
  app.get<{ Querystring: AuditQuery }>(
    '/audit',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'The audit log of operator actions, newest first',
        description:
          'One entry per call of an operator route (retry, cancel, pause, resume, schedule run, bulk operations), refusals included: who (the token name), what (action, route, target), the filter and matched count of a bulk operation, the status, when. Enqueues are not audited. Filter by token name and action; page with cursor.',
        tags: ['operations'],
        querystring: AuditQuery,
        response: { 200: AuditList, 400: ErrorSchema },
      },
    },
    async (request) => {
      const { token, action, cursor, limit = 100 } = request.query;
      const page = await queue.audit.list({ token, action, cursor, limit });
      return { entries: page.entries.map(toAuditView), next_cursor: page.nextCursor };
    },
  );
}
