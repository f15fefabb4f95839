/** /tasks: create, list and read tasks. */
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../../core/errors.js';
import { toTaskView } from '../../core/task.js';
import type { EnqueueInput, TaskQueue } from '../../queue/queue.js';
import {
  CreatedTask,
  CreateTaskBody,
  ErrorSchema,
  LIST_LIMIT_DEFAULT,
  ListTasksQuery,
  TaskIdParams,
  TaskList,
  TaskSchema,
} from '../schemas.js';

/** Turns a validated POST body (and the Idempotency-Key header) into an enqueue input. */
export function toEnqueueInput(body: CreateTaskBody, idempotencyKey?: string, where = 'body'): EnqueueInput {
  if (body.run_at !== undefined && body.delay_ms !== undefined) {
    throw new QueueError('TQ_ERR_VALIDATION', `${where} may have run_at or delay_ms, not both`);
  }
  let runAt: number | undefined;
  if (body.run_at !== undefined) {
    runAt = Date.parse(body.run_at);
    if (Number.isNaN(runAt))
      throw new QueueError('TQ_ERR_VALIDATION', `${where}/run_at must be an ISO 8601 date-time`);
  } else if (body.delay_ms !== undefined) runAt = Date.now() + body.delay_ms;
  if (idempotencyKey !== undefined && body.unique_key !== undefined && idempotencyKey !== body.unique_key) {
    throw new QueueError('TQ_ERR_VALIDATION', 'the Idempotency-Key header and body/unique_key differ');
  }
  return {
    action: body.action,
    data: body.data as EnqueueInput['data'],
    maxAttempts: body.max_attempts,
    priority: body.priority,
    runAt,
    uniqueKey: idempotencyKey ?? body.unique_key,
  };
}

function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const value = headers['idempotency-key'];
  if (value === undefined) return undefined;
  const key = Array.isArray(value) ? value[0] : value;
  if (!key || key.length > 255)
    throw new QueueError('TQ_ERR_VALIDATION', 'Idempotency-Key must be 1 to 255 characters');
  return key;
}

export function taskRoutes(app: FastifyInstance, queue: TaskQueue): void {
  app.post<{ Body: CreateTaskBody }>(
    '/tasks',
    {
      schema: {
        summary: 'Queue a task',
        description:
          'Answers 202 once the task is committed to disk; 200 when an idempotency key matched an earlier task.',
        tags: ['tasks'],
        headers: {
          type: 'object',
          properties: {
            'idempotency-key': { type: 'string', description: 'deduplicates repeated requests' },
          },
        },
        body: CreateTaskBody,
        response: {
          200: CreatedTask,
          202: CreatedTask,
          400: ErrorSchema,
          409: ErrorSchema,
          413: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const input = toEnqueueInput(request.body, idempotencyKeyOf(request.headers));
      const { task, inserted } = await queue.enqueue(input);
      return reply
        .code(inserted ? 202 : 200)
        .header('location', `/tasks/${task.id}`)
        .send({ id: task.id, status: task.status });
    },
  );

  app.get<{ Querystring: ListTasksQuery }>(
    '/tasks',
    {
      schema: {
        summary: 'List tasks, newest first',
        tags: ['tasks'],
        querystring: ListTasksQuery,
        response: { 200: TaskList, 400: ErrorSchema },
      },
    },
    async (request) => {
      const { status, action, cursor, limit = LIST_LIMIT_DEFAULT } = request.query;
      const page = await queue.list({ status, action, cursor, limit });
      return { tasks: page.tasks.map(toTaskView), count: page.tasks.length, next_cursor: page.nextCursor };
    },
  );

  app.get<{ Params: TaskIdParams }>(
    '/tasks/:id',
    {
      schema: {
        summary: 'Read one task',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: TaskSchema, 404: ErrorSchema },
      },
    },
    async (request) => {
      const task = await queue.get(request.params.id);
      if (!task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${request.params.id} not found`);
      return toTaskView(task);
    },
  );
}
