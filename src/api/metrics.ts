/**
 * Prometheus metrics at /metrics (docs/metrics.md lists every one).
 *
 * Each app has its own Registry, never prom-client's global one, so tests can build many apps in
 * one process. Counters follow events (the queue's `enqueued`/`retried`, the worker pool's
 * `taskFinished`), so they count what this process did; queue depth is read from the database at
 * scrape time, so every node, worker-only ones included, reports the whole queue.
 */
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LimitedClaim } from '../core/flow.js';
import { TASK_STATUSES } from '../core/task.js';
import type { Outcome } from '../core/outcome.js';
import { willRetry } from '../core/retry.js';
import type { TaskRecord } from '../core/task.js';
import type { WorkerStatus } from '../core/worker-status.js';
import type { TaskCounts, TaskQueue } from '../queue/queue.js';

export interface MetricsDeps {
  queue: TaskQueue;
  pool?: WorkerStatus;
}

/** What happened to a task after one run, as the `outcome` label shows it. */
function outcomeLabel(outcome: Outcome, retried: boolean): string {
  if (retried) return 'retried';
  if (outcome.kind !== 'aborted') return outcome.kind;
  return outcome.abort.kind === 'cancel' ? 'cancelled' : outcome.abort.kind;
}

/**
 * One labelled child per label set, looked up by a string. prom-client hashes a label object on
 * every `inc` or `observe`, which showed in the profiles of the enqueue and task paths; the label
 * sets are few (actions, outcomes, routes), and prom-client keeps a series for each anyway.
 */
function seriesOf<T>(child: (...labels: string[]) => T): (...labels: string[]) => T {
  const cache = new Map<string, T>();
  return (...labels) => {
    const key = labels.join('\u0000');
    let series = cache.get(key);
    if (!series) {
      series = child(...labels);
      cache.set(key, series);
    }
    return series;
  };
}

export function installMetrics(app: FastifyInstance, { queue, pool }: MetricsDeps): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const byAction = (name: string, help: string, labelNames: string[] = ['action']) =>
    new Counter({ name, help, labelNames, registers: [registry] });

  // Both queue gauges are collected in the same scrape: share one count query between them.
  let counting: Promise<TaskCounts> | null = null;
  const readCounts = () => (counting ??= queue.counts().finally(() => (counting = null)));

  const enqueued = byAction('taskq_tasks_enqueued_total', 'Tasks stored by this process');
  const completed = byAction('taskq_tasks_completed_total', 'Tasks completed by this process');
  const failed = byAction('taskq_tasks_failed_total', 'Tasks that ended failed in this process');
  const cancelled = byAction('taskq_tasks_cancelled_total', 'Running tasks aborted by a cancel request');
  const retried = byAction(
    'taskq_tasks_retried_total',
    'Tasks sent back to the queue: trigger="backoff" after a failed attempt, "manual" by POST /tasks/:id/retry, "bulk" by a bulk retry (POST /tasks/bulk)',
    ['action', 'trigger'],
  );
  const duration = new Histogram({
    name: 'taskq_task_duration_seconds',
    help: 'Time a handler ran, by action and outcome',
    labelNames: ['action', 'outcome'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  new Gauge({
    name: 'taskq_tasks',
    help: 'Tasks in the queue by status (read at scrape time)',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const { byStatus } = await readCounts();
      for (const status of TASK_STATUSES) this.set({ status }, byStatus[status]);
    },
  });
  new Gauge({
    name: 'taskq_oldest_queued_age_seconds',
    help: 'Age of the oldest queued task; 0 when none is queued (read at scrape time)',
    registers: [registry],
    async collect() {
      const { oldestQueuedAt } = await readCounts();
      this.set(oldestQueuedAt === null ? 0 : Math.max(0, Date.now() - oldestQueuedAt) / 1000);
    },
  });
  if (pool) {
    new Gauge({
      name: 'taskq_results_pending',
      help: 'Task results finished by this process and not yet written (claims pause at 2000)',
      registers: [registry],
      collect() {
        this.set(pool.resultsPending);
      },
    });
    new Gauge({
      name: 'taskq_results_stuck_seconds',
      help: 'How long writing task results has failed without a success; 0 while they are written',
      registers: [registry],
      collect() {
        this.set(pool.resultsStuckMs() / 1000);
      },
    });
  }
  if (pool && pool.flowLimits.length > 0) {
    // The limits this process claims under (docs/flow-control.md); set once, they do not change.
    const rate = new Gauge({
      name: 'taskq_rate_limit_per_second',
      help: 'Tasks of the action claimed per second at most, across every worker (its rate limit)',
      labelNames: ['action'],
      registers: [registry],
    });
    const burst = new Gauge({
      name: 'taskq_rate_limit_burst',
      help: 'Tasks of the action that may be claimed at once after a quiet spell (its bucket size)',
      labelNames: ['action'],
      registers: [registry],
    });
    const perKey = new Gauge({
      name: 'taskq_concurrency_per_key',
      help: 'Tasks of the action with one concurrency_key running at most at once, across every worker',
      labelNames: ['action'],
      registers: [registry],
    });
    for (const { action, rateLimit, concurrencyPerKey } of pool.flowLimits) {
      if (rateLimit) rate.set({ action }, rateLimit.perSecond);
      if (rateLimit) burst.set({ action }, rateLimit.burst);
      if (concurrencyPerKey !== undefined) perKey.set({ action }, concurrencyPerKey);
    }
  }
  const deferred = byAction(
    'taskq_claims_deferred_total',
    'Claims by this process that left ready tasks of the action queued: reason="rate_limit" or "concurrency_key"',
    ['action', 'reason'],
  );
  const deferredBy = seriesOf((action, reason) => deferred.labels(action, reason));
  const handedOff = byAction(
    'taskq_tasks_handed_off_total',
    "Tasks this process's workers took as they were stored (hand-off), not by a claim",
  );
  const handedOffBy = seriesOf((action) => handedOff.labels(action));
  const resultWriteFailures = new Counter({
    name: 'taskq_result_write_failures_total',
    help: 'Failed writes of task results (each is retried)',
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'taskq_http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const httpSeries = seriesOf((method, route, status) => httpDuration.labels(method, route, status));
  const enqueuedBy = seriesOf((action) => enqueued.labels(action));
  const completedBy = seriesOf((action) => completed.labels(action));
  const failedBy = seriesOf((action) => failed.labels(action));
  const cancelledBy = seriesOf((action) => cancelled.labels(action));
  const retriedBy = seriesOf((action, trigger) => retried.labels(action, trigger));
  const durationBy = seriesOf((action, outcome) => duration.labels(action, outcome));

  const onEnqueued = (tasks: { action: string }[]) => {
    for (const t of tasks) enqueuedBy(t.action).inc();
  };
  const onRetried = (task: { action: string }) => retriedBy(task.action, 'manual').inc();
  // A bulk retry is worked by this process's operation runner, which may not be the node it was asked of.
  const onBulkRetried = (actions: string[]) => {
    for (const action of actions) retriedBy(action, 'bulk').inc();
  };
  queue.on('enqueued', onEnqueued);
  queue.on('retried', onRetried);
  queue.bulk.on('retried', onBulkRetried);
  const onFinished = (task: TaskRecord, outcome: Outcome, durationMs: number) => {
    const retry = willRetry(task, outcome);
    const action = task.action;
    durationBy(action, outcomeLabel(outcome, retry)).observe(durationMs / 1000);
    if (retry) retriedBy(action, 'backoff').inc();
    else if (outcome.kind === 'completed') completedBy(action).inc();
    else if (outcome.kind === 'waiting')
      return; // not finished: it resumes when its children are
    else if (outcome.kind === 'failed' || outcome.abort.kind === 'timeout') failedBy(action).inc();
    else if (outcome.abort.kind === 'cancel') cancelledBy(action).inc();
  };
  const onWriteFailed = () => resultWriteFailures.inc();
  const onHandedOff = (tasks: TaskRecord[]) => {
    for (const task of tasks) handedOffBy(task.action).inc();
  };
  const onLimited = (limited: LimitedClaim[]) => {
    for (const l of limited) deferredBy(l.action, l.reason).inc();
  };
  const unsubscribes = pool
    ? [
        pool.onTaskFinished(onFinished),
        pool.onResultWriteFailed(onWriteFailed),
        pool.onClaimLimited(onLimited),
        pool.onHandedOff(onHandedOff),
      ]
    : [];
  app.addHook('onClose', async () => {
    queue.off('enqueued', onEnqueued);
    queue.off('retried', onRetried);
    queue.bulk.off('retried', onBulkRetried);
    for (const unsubscribe of unsubscribes) unsubscribe();
  });

  app.addHook('onResponse', async (request, reply) => {
    // The pattern (/tasks/:id), never the raw URL, or every task id would make a new series.
    const route = request.routeOptions.url ?? 'unmatched';
    httpSeries(request.method, route, String(reply.statusCode)).observe(reply.elapsedTime / 1000);
  });

  app.get(
    '/metrics',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['operations'],
        produces: ['text/plain'],
        response: {
          200: {
            description: 'metrics in the Prometheus text format',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
  return registry;
}
