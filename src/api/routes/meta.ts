/**
 * GET /meta: the vocabulary a client needs before it shows a task — every status, which of them
 * are finished, and from which an operator may retry or cancel (one task, or in bulk). Built from
 * core/task.ts, so the dashboard reads the server's rules instead of keeping its own copy.
 * `token` says which token the request came with and what it may do (null without tokens:
 * everything), so the dashboard shows only the controls it may use.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PACKAGE_VERSION } from '../../core/version.js';
import {
  BULK_STATUSES,
  CANCELLABLE_STATUSES,
  FINISHED_STATUSES,
  RETRYABLE_STATUSES,
  TASK_STATUSES,
} from '../../core/task.js';
import { SCOPES } from '../../core/tokens.js';
import { TaskStatusSchema } from '../schemas.js';
// request.token is declared there.
import type {} from '../auth.js';

export const MetaSchema = Type.Object({
  statuses: Type.Array(TaskStatusSchema, { description: 'Every status, in life order' }),
  finished: Type.Array(TaskStatusSchema, { description: 'Statuses a task never leaves on its own' }),
  actions: Type.Object({
    retry: Type.Array(TaskStatusSchema, { description: 'Statuses POST /tasks/{id}/retry accepts' }),
    cancel: Type.Array(TaskStatusSchema, { description: 'Statuses POST /tasks/{id}/cancel accepts' }),
  }),
  bulk: Type.Object(
    {
      retry: Type.Array(TaskStatusSchema),
      cancel: Type.Array(TaskStatusSchema),
      delete: Type.Array(TaskStatusSchema),
    },
    { description: 'Statuses each op of POST /tasks/bulk changes; other matching tasks are skipped' },
  ),
  version: Type.String({ description: 'The service version' }),
  token: Type.Union([
    Type.Object({
      name: Type.String({ description: "the request's token" }),
      scopes: Type.Array(Type.Unsafe<(typeof SCOPES)[number]>({ type: 'string', enum: [...SCOPES] }), {
        description: 'every scope it has, implied ones included (admin: all; enqueue and operate: read)',
      }),
    }),
    Type.Null({ description: 'the service runs without tokens: every request may do everything' }),
  ]),
});
export type Meta = Static<typeof MetaSchema>;

const META: Omit<Meta, 'token'> = {
  statuses: [...TASK_STATUSES],
  finished: [...FINISHED_STATUSES],
  actions: { retry: [...RETRYABLE_STATUSES], cancel: [...CANCELLABLE_STATUSES] },
  bulk: {
    retry: [...BULK_STATUSES.retry],
    cancel: [...BULK_STATUSES.cancel],
    delete: [...BULK_STATUSES.delete],
  },
  version: PACKAGE_VERSION,
};

export function metaRoutes(app: FastifyInstance): void {
  app.get(
    '/meta',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'Task statuses and which of them each operator action accepts',
        tags: ['operations'],
        response: { 200: MetaSchema },
      },
    },
    async (request): Promise<Meta> => ({
      ...META,
      token: request.token && { name: request.token.name, scopes: [...request.token.scopes] },
    }),
  );
}
