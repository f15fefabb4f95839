/**
 * Bulk operations over a filter: POST /tasks/bulk (a dry run counts; otherwise the operation is
 * stored and worked in the background, queue/bulk.ts), GET /operations/:id and its progress as
 * server-sent events. The filter is the grammar of GET /tasks (core/filter.ts). These routes
 * declare their scope (`operate` to change tasks, `read` to watch) for scoped tokens; a bulk
 * delete needs `admin`, which the route checks once it has read the body. Every POST is in the
 * audit log as `bulk.<op>` with its filter, matched count and dry_run.
 */
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../../core/errors.js';
import { requireScope } from '../auth.js';
import { parseFilter } from '../../core/filter.js';
import type { TaskQueue } from '../../queue/queue.js';
import type { StreamSlots } from '../stream-slots.js';
import {
  BulkAccepted,
  BulkBody,
  BulkCount,
  ErrorSchema,
  IdempotencyKeyHeader,
  OperationIdParams,
  OperationSchema,
} from '../schemas.js';
import { toOperationView } from '../views.js';

const KEEPALIVE_MS = 15_000;

function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const value = headers['idempotency-key'];
  const key = Array.isArray(value) ? value[0] : value;
  if (key === undefined) return undefined;
  if (!key || key.length > 255)
    throw new QueueError('TQ_ERR_VALIDATION', 'Idempotency-Key must be 1 to 255 characters');
  return key;
}

export function bulkRoutes(app: FastifyInstance, queue: TaskQueue, streams: StreamSlots): void {
  app.post<{ Body: BulkBody }>(
    '/tasks/bulk',
    {
      config: { scope: 'operate', audit: 'bulk' },
      schema: {
        summary: 'Retry, cancel or delete every task a filter matches',
        description:
          'With dry_run, answers 200 with the count. Otherwise stores the operation and answers 202 with its id; it is worked in small transactions in the background (GET /operations/:id, and its events). The same request while that operation runs, or a repeated Idempotency-Key, answers 200 with the same operation. Retry takes failed and cancelled tasks, cancel queued and running ones, delete every one that is not running; other matching tasks are skipped.',
        tags: ['operations'],
        headers: { type: 'object', properties: { 'idempotency-key': IdempotencyKeyHeader } },
        body: BulkBody,
        response: {
          200: { anyOf: [BulkAccepted, BulkCount] },
          202: BulkAccepted,
          400: ErrorSchema,
          403: ErrorSchema,
          409: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const { op, dry_run: dryRun } = request.body;
      const detail = { filter: request.body.filter, dry_run: dryRun === true };
      request.audit = { action: `bulk.${op}`, target: null, detail };
      requireScope(request, op === 'delete' ? 'admin' : 'operate');
      const filter = parseFilter(request.body.filter, 'body/filter');
      const answer = await queue.bulk.submit({
        op,
        filter,
        dryRun,
        idempotencyKey: idempotencyKeyOf(request.headers),
        createdBy: request.token?.name ?? null,
      });
      request.audit = {
        action: `bulk.${op}`,
        target: 'operation' in answer ? answer.operation.id : null,
        detail: { ...detail, matched: answer.matched, matched_exact: answer.exact },
        changedNothing: dryRun === true,
      };
      const counted = { matched: answer.matched, matched_exact: answer.exact, scans: answer.scans };
      if (!('operation' in answer)) return reply.code(200).send(counted);
      return reply
        .code(answer.created ? 202 : 200)
        .header('location', `/operations/${answer.operation.id}`)
        .send({ operation_id: answer.operation.id, status: answer.operation.status, ...counted });
    },
  );

  // Streams end at shutdown, or app.close() would wait for them.
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const c of open) c.abort();
  });

  const found = async (id: string) => {
    const op = await queue.bulk.get(id);
    if (!op) throw new QueueError('TQ_ERR_NOT_FOUND', `operation ${id} not found`);
    return op;
  };

  app.get<{ Params: OperationIdParams }>(
    '/operations/:id',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'A bulk operation: status, matched, done, skipped, errors',
        tags: ['operations'],
        params: OperationIdParams,
        response: { 200: OperationSchema, 404: ErrorSchema },
      },
    },
    async (request) => toOperationView(await found(request.params.id.toLowerCase())),
  );

  app.get<{ Params: OperationIdParams }>(
    '/operations/:id/events',
    {
      config: { scope: 'read' },
      schema: {
        summary:
          'A bulk operation as server-sent events (event "operation") after each step, until it finishes',
        tags: ['operations'],
        params: OperationIdParams,
        produces: ['text/event-stream'],
        response: {
          200: {
            description: 'an event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          404: ErrorSchema,
          503: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id.toLowerCase();
      await found(id);
      streams.take(reply.raw);
      const closed = new AbortController();
      open.add(closed);
      reply.raw.once('close', () => {
        closed.abort();
        open.delete(closed);
      });
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      for await (const op of queue.bulk.follow(id, KEEPALIVE_MS, closed.signal)) {
        out.write(
          op ? `event: operation\ndata: ${JSON.stringify(toOperationView(op))}\n\n` : ': keep-alive\n\n',
        );
      }
      out.end();
    },
  );
}
