/**
 * Operator routes: cancel and retry a task, read queue statistics, and follow them live.
 *
 * GET /events/stats is a server-sent-event stream. One ticker per app serves every client, and
 * only while at least one listens, so many open dashboards cost one read per tick between them
 * and none cost nothing. The read is cheap at any table size (trigger-kept counters, a
 * per-minute rollup and one index probe: docs/stats.md), so the ticker reads when the driver
 * announced a change in this process and every STATS_REFRESH_MS for changes it cannot see
 * (claims, other processes, queue age); it still never spends more than a tenth of its time
 * reading, should a database be slow. It pushes only when the stats changed, plus a comment line
 * every 15 s so proxies keep the connection. The streams are ended in `preClose`, because
 * app.close() would otherwise wait forever for responses that never finish.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../../core/errors.js';
import { TASK_STATUSES, toTaskView, type TaskStatus } from '../../core/task.js';
import type { Unsubscribe } from '../../drivers/driver.js';
import type { TaskQueue } from '../../queue/queue.js';
import type { StreamSlots } from '../stream-slots.js';
import { ErrorSchema, STATS_WINDOW_MS, StatsSchema, TaskIdParams, taskIdOf, type Stats } from '../schemas.js';

export const STATS_PUSH_INTERVAL_MS = 1000;
/** Reads cost the same at any table size (docs/stats.md), so even unseen changes show within 2 s. */
const STATS_REFRESH_MS = 2000;
const KEEPALIVE_MS = 15_000;
const MINUTE_MS = 60_000;

const zeroCounts = (): Record<TaskStatus, number> =>
  Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;

/** Counts, queue age and the last hour's throughput with every minute present (zeros included). */
export async function readStats(queue: TaskQueue, now = Date.now()): Promise<Stats> {
  const firstMinute = Math.floor(now / MINUTE_MS) * MINUTE_MS - STATS_WINDOW_MS + MINUTE_MS;
  const [counts, points] = await Promise.all([queue.counts(), queue.throughput(firstMinute)]);
  const byAction = new Map<string, Record<TaskStatus, number>>();
  for (const { action, status, count } of counts.byAction) {
    const entry = byAction.get(action) ?? zeroCounts();
    entry[status] += count;
    byAction.set(action, entry);
  }
  const perMinute = new Map(points.map((p) => [Number(p.minute), p]));
  const sum = (c: Record<TaskStatus, number>) => TASK_STATUSES.reduce((n, s) => n + c[s], 0);
  return {
    counts: counts.byStatus,
    total: sum(counts.byStatus),
    by_action: [...byAction].map(([action, c]) => ({ action, counts: c, total: sum(c) })),
    oldest_queued_age_ms: counts.oldestQueuedAt === null ? null : Math.max(0, now - counts.oldestQueuedAt),
    throughput: Array.from({ length: STATS_WINDOW_MS / MINUTE_MS }, (_, i) => {
      const minute = firstMinute + i * MINUTE_MS;
      const point = perMinute.get(minute);
      return {
        minute: new Date(minute).toISOString(),
        completed: Number(point?.completed ?? 0),
        failed: Number(point?.failed ?? 0),
      };
    }),
    generated_at: new Date(now).toISOString(),
  };
}

/** Pushes stats to every connected SSE client from one shared ticker. */
class StatsStream {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private reading = false;
  closed = false;
  private lastWriteAt = 0;
  private dirty = true;
  private lastReadAt = 0;
  /** Reads are spaced so that counting takes at most a tenth of the time. */
  private nextReadAt = 0;
  private readonly unsubscribes: Unsubscribe[] = [];

  constructor(
    private readonly queue: TaskQueue,
    private readonly log: FastifyInstance['log'],
  ) {
    const markDirty = () => (this.dirty = true);
    for (const event of ['tasksQueued', 'tasksChanged', 'cancelRequested'] as const) {
      this.unsubscribes.push(queue.driver.on(event, markDirty));
    }
  }

  add(res: ServerResponse): void {
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopTicker();
    });
    // A new client gets the current stats at once, not after the next change.
    if (this.last) res.write(this.last);
    else this.dirty = true;
    void this.tick();
    this.timer ??= setInterval(() => void this.tick(), STATS_PUSH_INTERVAL_MS).unref();
  }

  private async tick(): Promise<void> {
    const startedAt = Date.now();
    const due = this.dirty || startedAt - this.lastReadAt >= STATS_REFRESH_MS;
    if (!due || startedAt < this.nextReadAt || this.reading) return this.keepAlive();
    this.dirty = false;
    this.reading = true;
    this.lastReadAt = startedAt;
    let message: string;
    try {
      // generated_at changes every time; compare without it.
      const stats: Partial<Stats> = await readStats(this.queue);
      delete stats.generated_at;
      message = `event: stats\ndata: ${JSON.stringify(stats)}\n\n`;
    } catch (err) {
      this.log.warn({ err }, 'reading stats for /events/stats failed');
      return;
    } finally {
      this.reading = false;
      this.nextReadAt = Date.now() + 9 * (Date.now() - startedAt);
    }
    if (message !== this.last) this.broadcast((this.last = message));
    else this.keepAlive();
  }

  private keepAlive(): void {
    if (Date.now() - this.lastWriteAt >= KEEPALIVE_MS) this.broadcast(': keepalive\n\n');
  }

  private broadcast(text: string): void {
    this.lastWriteAt = Date.now();
    for (const res of this.clients) res.write(text);
  }

  private stopTicker(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  closeAll(): void {
    this.closed = true;
    this.stopTicker();
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}

export function operationRoutes(app: FastifyInstance, queue: TaskQueue, streams: StreamSlots): void {
  const idRoute = (summary: string, description: string) => ({
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
      'Retry a failed or cancelled task',
      'Puts the task back in the queue with its attempts reset; any other status answers 409.',
    ),
    async (request) => toTaskView(await queue.retry(taskIdOf(request.params))),
  );

  app.get(
    '/stats',
    {
      schema: {
        summary: 'Queue statistics: counts by status and action, queue age, throughput over the last hour',
        tags: ['operations'],
        response: { 200: StatsSchema },
      },
    },
    async () => readStats(queue),
  );

  const stream = new StatsStream(queue, app.log);
  app.addHook('preClose', async () => stream.closeAll());
  app.get(
    '/events/stats',
    {
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
