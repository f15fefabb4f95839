/** /tasks: create, list and read tasks. */
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../../core/errors.js';
import { parseFilter } from '../../core/filter.js';
import type { NewTask } from '../../core/task.js';
import type { ErrorObject } from 'ajv';
import type { ServerResponse } from 'node:http';
import { toTaskGraphView, toTaskView } from '../views.js';
import { bodyValidator, describeValidation } from '../validation.js';
import type { StreamSlots } from '../stream-slots.js';
import type { EnqueueInput, TaskQueue } from '../../queue/queue.js';
import {
  BatchBody,
  BatchCreated,
  BatchError,
  GetTaskQuery,
  IdempotencyKeyHeader,
  CreatedTask,
  CreateTaskBody,
  ErrorSchema,
  LIST_LIMIT_DEFAULT,
  ListTasksQuery,
  TaskIdParams,
  TaskList,
  TaskSchema,
  TraceHeaders,
  taskIdOf,
} from '../schemas.js';
import type { TraceHeaders as TraceHeaderValues } from '../../queue/tracing.js';

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
  }
  if (idempotencyKey !== undefined && body.unique_key !== undefined && idempotencyKey !== body.unique_key) {
    throw new QueueError('TQ_ERR_VALIDATION', 'the Idempotency-Key header and body/unique_key differ');
  }
  return {
    action: body.action,
    data: body.data,
    maxAttempts: body.max_attempts,
    priority: body.priority,
    runAt,
    delayMs: body.delay_ms, // from the queue's clock, read once when it prepares the task
    uniqueKey: idempotencyKey ?? body.unique_key,
    concurrencyKey: body.concurrency_key,
    dependsOn: body.depends_on,
    onDependencyFailure: body.on_dependency_failure,
  };
}

const validateCreateTask = bodyValidator<CreateTaskBody>(CreateTaskBody);

/** An AbortSignal that fires when the response closes, e.g. the client went away (ends long-polls and streams). */
function abortOnClose(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => controller.abort());
  return controller.signal;
}

function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const value = headers['idempotency-key'];
  if (value === undefined) return undefined;
  const key = Array.isArray(value) ? value[0] : value;
  if (!key || key.length > 255)
    throw new QueueError('TQ_ERR_VALIDATION', 'Idempotency-Key must be 1 to 255 characters');
  return key;
}

/** The request's W3C trace headers, for the queue to continue (it ignores malformed ones). */
function traceHeadersOf(
  headers: Record<string, string | string[] | undefined>,
): TraceHeaderValues | undefined {
  const { traceparent, tracestate } = headers;
  if (typeof traceparent !== 'string') return undefined;
  return { traceparent, tracestate: typeof tracestate === 'string' ? tracestate : undefined };
}

export function taskRoutes(app: FastifyInstance, queue: TaskQueue, streams: StreamSlots): void {
  app.post<{ Body: CreateTaskBody }>(
    '/tasks',
    {
      config: { scope: 'enqueue' },
      schema: {
        summary: 'Queue a task',
        description:
          'Answers 202 once the task is committed to disk; 200 when an idempotency key matched an earlier task.',
        tags: ['tasks'],
        headers: {
          type: 'object',
          properties: {
            'idempotency-key': IdempotencyKeyHeader,
            ...TraceHeaders,
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
      input.trace = traceHeadersOf(request.headers);
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
      config: { scope: 'read' },
      schema: {
        summary: 'List tasks, newest first, by the filter grammar (docs/api.md, "Filters")',
        tags: ['tasks'],
        querystring: ListTasksQuery,
        response: { 200: TaskList, 400: ErrorSchema },
      },
    },
    async (request) => {
      const { cursor, limit = LIST_LIMIT_DEFAULT } = request.query;
      const filter = parseFilter(request.query, 'querystring', ['limit', 'cursor']);
      const page = await queue.list({ filter, cursor, limit });
      return {
        tasks: page.tasks.map(toTaskView),
        count: page.tasks.length,
        next_cursor: page.nextCursor,
        scans: page.scans,
      };
    },
  );

  app.post<{ Body: BatchBody }>(
    '/tasks/batch',
    {
      config: { scope: 'enqueue' },
      schema: {
        summary: 'Queue many tasks in one transaction',
        description:
          'All items are stored or none. A bad item is reported with its index; nothing is stored then.',
        tags: ['tasks'],
        headers: { type: 'object', properties: TraceHeaders },
        body: BatchBody,
        response: { 202: BatchCreated, 400: BatchError, 409: ErrorSchema, 413: ErrorSchema },
      },
    },
    async (request, reply) => {
      const tasks: NewTask[] = [];
      const errors: { index: number; error: string }[] = [];
      const now = Date.now();
      request.body.tasks.forEach((item, index) => {
        const where = `body/tasks/${index}`;
        try {
          if (!validateCreateTask(item)) {
            throw new QueueError(
              'TQ_ERR_VALIDATION',
              describeValidation(where, validateCreateTask.errors?.[0] as ErrorObject),
            );
          }
          const later = (item.depends_on ?? []).find((d) => typeof d === 'number' && d >= index);
          if (later !== undefined)
            throw new QueueError(
              'TQ_ERR_VALIDATION',
              `${where}/depends_on: item ${later} is not an earlier item`,
            );
          // prepare() refuses unknown actions in strict mode; its rows are the ones stored.
          tasks.push(queue.prepare(toEnqueueInput(item, undefined, where), now));
        } catch (err) {
          if (!(err instanceof QueueError)) throw err;
          errors.push({ index, error: err.message });
        }
      });
      if (errors.length > 0) {
        const summary = errors
          .slice(0, 5)
          .map((e) => e.error)
          .join('; ');
        const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
        return reply.code(400).send({
          error: `${errors.length} bad task(s), none queued: ${summary}${more}`,
          code: 'TQ_ERR_VALIDATION',
          errors,
        });
      }
      const results = await queue.enqueueMany(tasks, traceHeadersOf(request.headers));
      return reply.code(202).send({ ids: results.map((r) => r.task.id) });
    },
  );

  app.get<{ Params: TaskIdParams; Querystring: GetTaskQuery }>(
    '/tasks/:id',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'Read one task; with ?wait=<seconds>, wait until it finishes',
        tags: ['tasks'],
        params: TaskIdParams,
        querystring: GetTaskQuery,
        response: { 200: TaskSchema, 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const id = taskIdOf(request.params);
      const wait = request.query.wait ?? 0;
      const closed = abortOnClose(reply.raw);
      const task = wait > 0 ? await queue.waitForFinish(id, wait * 1000, closed) : await queue.get(id);
      if (!task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${id} not found`);
      return toTaskGraphView(task, await queue.graph(task));
    },
  );

  app.get<{ Params: TaskIdParams }>(
    '/tasks/:id/events',
    {
      config: { scope: 'read' },
      schema: {
        summary: "Stream the task's state changes as server-sent events (event: task), until it finishes",
        tags: ['tasks'],
        params: TaskIdParams,
        produces: ['text/event-stream'],
        response: { 404: ErrorSchema, 503: ErrorSchema },
      },
    },
    async (request, reply) => {
      const id = taskIdOf(request.params);
      const task = await queue.get(id);
      if (!task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${id} not found`);
      streams.take(reply.raw);
      const closed = abortOnClose(reply.raw);
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      let last = '';
      for await (const current of queue.follow(task, 15_000, closed)) {
        // What GET /tasks/:id answers, graph included (the dashboard draws it from here).
        const json = JSON.stringify(toTaskGraphView(current, await queue.graph(current)));
        if (json !== last) out.write(`event: task\ndata: ${json}\n\n`);
        else out.write(': keep-alive\n\n');
        last = json;
      }
      out.end();
    },
  );
}
