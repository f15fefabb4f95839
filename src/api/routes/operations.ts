/**
 * Operator routes: cancel and retry a task, read queue statistics, and follow them live.
 *
 * GET /events/stats is a server-sent-event stream fed by one StatsFeed per app (queue/stats.ts
 * says when it reads); each stream gets the stats when they change, plus a comment line every
 * 15 s so proxies keep the connection. The streams are ended in `preClose`, because app.close()
 * would otherwise wait forever for responses that never finish.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../../core/errors.js';
import type { TaskQueue, Unsubscribe } from '../../queue/queue.js';
import { readStats, StatsFeed, type QueueStats } from '../../queue/stats.js';
import type { StreamSlots } from '../stream-slots.js';
import { ErrorSchema, StatsSchema, TaskIdParams, taskIdOf, type Stats } from '../schemas.js';
import { toStatsView, toTaskView } from '../views.js';

const KEEPALIVE_MS = 15_000;

/** The open /events/stats streams of one app. */
class StatsStreams {
  private readonly open = new Map<ServerResponse, Unsubscribe>();
  private readonly feed: StatsFeed;
  /** The message of the latest stats, made once for every stream. */
  private message: { stats: QueueStats; text: string } | undefined;
  closed = false;

  constructor(queue: TaskQueue, log: FastifyInstance['log']) {
    this.feed = new StatsFeed(queue, (err) => log.warn({ err }, 'reading stats for /events/stats failed'));
  }

  add(res: ServerResponse): void {
    let lastWriteAt = 0;
    const unfollow = this.feed.follow({
      changed: (stats) => {
        lastWriteAt = Date.now();
        res.write(this.messageOf(stats));
      },
      idle: () => {
        if (Date.now() - lastWriteAt < KEEPALIVE_MS) return;
        lastWriteAt = Date.now();
        res.write(': keepalive\n\n');
      },
    });
    this.open.set(res, unfollow);
    res.on('close', () => {
      this.open.delete(res);
      unfollow();
    });
  }

  private messageOf(stats: QueueStats): string {
    if (this.message?.stats !== stats) {
      // generated_at changes every time: streams send it only with GET /stats.
      const view: Partial<Stats> = toStatsView(stats);
      delete view.generated_at;
      this.message = { stats, text: `event: stats\ndata: ${JSON.stringify(view)}\n\n` };
    }
    return this.message.text;
  }

  closeAll(): void {
    this.closed = true;
    for (const [res, unfollow] of this.open) {
      unfollow();
      res.end();
    }
    this.open.clear();
  }
}

export function operationRoutes(app: FastifyInstance, queue: TaskQueue, streams: StreamSlots): void {
  const idRoute = (audit: string, summary: string, description: string) => ({
    config: { scope: 'operate' as const, audit },
    schema: {
      summary,
      description,
      tags: ['operations'],
      params: TaskIdParams,
      response: { 200: { $ref: 'Task#' }, 202: { $ref: 'Task#' }, 404: ErrorSchema, 409: ErrorSchema },
    },
  });

  app.post<{ Params: TaskIdParams }>(
    '/tasks/:id/cancel',
    idRoute(
      'tasks.cancel',
      'Cancel a task',
      'A queued task is cancelled at once (200). A running task has its handler aborted and ends cancelled shortly after (202). A finished task answers 409.',
    ),
    async (request, reply) => {
      const task = await queue.cancel(taskIdOf(request.params));
      return reply.code(task.status === 'cancelled' ? 200 : 202).send(toTaskView(task));
    },
  );

  app.post<{ Params: TaskIdParams }>(
    '/tasks/:id/retry',
    idRoute(
      'tasks.retry',
      'Retry a failed or cancelled task',
      'Puts the task back in the queue with its attempts reset; any other status answers 409.',
    ),
    async (request) => toTaskView(await queue.retry(taskIdOf(request.params))),
  );

  app.get(
    '/stats',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'Queue statistics: counts by status and action, queue age, throughput over the last hour',
        tags: ['operations'],
        response: { 200: StatsSchema },
      },
    },
    async () => toStatsView(await readStats(queue)),
  );

  const stream = new StatsStreams(queue, app.log);
  app.addHook('preClose', async () => stream.closeAll());
  app.get(
    '/events/stats',
    {
      config: { scope: 'read' },
      schema: {
        summary:
          'The same statistics as GET /stats, as server-sent events (event "stats") whenever they change',
        tags: ['operations'],
        produces: ['text/event-stream'],
        response: {
          200: {
            description: 'an event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          503: ErrorSchema,
        },
      },
    },
    async (_request, reply) => {
      if (stream.closed) throw new QueueError('TQ_ERR_UNAVAILABLE', 'the service is shutting down');
      streams.take(reply.raw);
      reply.hijack();
      reply.raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      reply.raw.write('retry: 2000\n\n');
      stream.add(reply.raw);
    },
  );
}
