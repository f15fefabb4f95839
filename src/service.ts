/**
 * TaskqNode: one taskq process, a node of the deployment (docs/deployment.md): the storage
 * driver, the queue, the HTTP app and, unless it is an API-only node, the worker pool, built
 * together with one start and one stop. This file and src/cli/ are the only places that compose
 * the layers (eslint.config.js). The CLI's `run` command is a thin wrapper.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './api/app.js';
import { readTokensFile } from './api/auth.js';
import { combineTokens } from './core/tokens.js';
import { dashboardRoutes } from './dashboard/routes.js';
import type { Config } from './core/config.js';
import type { QueueDriver } from './drivers/driver.js';
import { openDriver } from './drivers/open-driver.js';
import type { HandlerDefinition } from './handlers/handler.js';
import { HandlerRegistry, loadHandlersFolder } from './handlers/registry.js';
import { BUILTIN_HANDLERS } from './handlers/builtin.js';
import { TaskQueue } from './queue/queue.js';
import { newNodeId, NodeRegistry } from './queue/nodes.js';
import { PACKAGE_VERSION } from './core/version.js';
import { hostname } from 'node:os';
import { Pruner } from './worker/pruner.js';
import { loadSchedules, Scheduler } from './worker/scheduler.js';
import { ConfigError } from './core/errors.js';
import { WorkerPool } from './worker/worker-pool.js';
import { OperationRunner } from './worker/operation-runner.js';

export interface TaskqNodeOptions {
  config: Readonly<Config>;
  logger: Logger;
  /** Extra handlers given in code (tests, embedding); the handlers folder is loaded too. */
  handlers?: HandlerDefinition[];
  /** Use this driver instead of opening `config.db` (taskq run, tests). */
  driver?: QueueDriver;
  /** The caller already migrated `driver` (taskq run does, before loading the server). */
  migrated?: boolean;
}

export class TaskqNode {
  readonly app: FastifyInstance;
  readonly queue: TaskQueue;
  readonly pool: WorkerPool | undefined;
  readonly driver: QueueDriver;
  readonly pruner: Pruner | undefined;
  readonly scheduler: Scheduler | undefined;
  /** This process's row in GET /nodes; its id is the lease owner of the tasks it runs. */
  readonly node: NodeRegistry;
  /** Works bulk operations (every node, API-only ones too). */
  readonly operations: OperationRunner;
  private stopped = false;

  private constructor(
    private readonly options: TaskqNodeOptions,
    parts: {
      app: FastifyInstance;
      queue: TaskQueue;
      pool: WorkerPool | undefined;
      pruner: Pruner | undefined;
      scheduler: Scheduler | undefined;
      driver: QueueDriver;
      node: NodeRegistry;
      operations: OperationRunner;
    },
  ) {
    this.node = parts.node;
    this.operations = parts.operations;
    this.app = parts.app;
    this.queue = parts.queue;
    this.pool = parts.pool;
    this.driver = parts.driver;
    this.pruner = parts.pruner;
    this.scheduler = parts.scheduler;
  }

  /** Opens the database, applies pending migrations, loads handlers and builds the app. */
  static async create(options: TaskqNodeOptions): Promise<TaskqNode> {
    const { config, logger } = options;
    const registry = new HandlerRegistry(
      [...BUILTIN_HANDLERS, ...(options.handlers ?? [])],
      config.strictActions,
    );
    if (config.handlers) {
      const loaded = await loadHandlersFolder(registry, config.handlers);
      logger.info({ folder: config.handlers, actions: loaded }, 'loaded handlers');
    }
    const schedules = config.schedules ? loadSchedules(config.schedules) : [];
    for (const s of schedules) {
      if (!registry.resolve(s.action))
        throw new ConfigError(`--schedules: schedule "${s.name}": unknown action "${s.action}"`);
    }
    const driver = options.driver ?? (await openDriver(config, logger.child({ component: 'db' })));
    try {
      if (!options.migrated) {
        const { applied, current } = await driver.migrate();
        if (applied.length > 0) logger.info({ applied, version: current }, 'applied migrations');
      }
      const queue = new TaskQueue({
        driver,
        registry,
        defaultMaxAttempts: config.maxAttempts,
        pollMs: config.pollMs,
        uniqueWindowMs: config.idempotencyWindowMs,
        rateLimits: config.rateLimits,
      });
      const nodeId = newNodeId();
      // The node heartbeats every third of a lease: on a worker node with the lease renewals.
      const heartbeatMs = Math.max(50, Math.floor(config.leaseMs / 3));
      let node: NodeRegistry | undefined = undefined;
      const pool =
        config.role === 'api'
          ? undefined
          : new WorkerPool({
              owner: nodeId,
              onHeartbeat: () => node?.beat() ?? Promise.resolve(),
              driver,
              registry,
              queue,
              logger: logger.child({ component: 'worker' }),
              concurrency: config.concurrency,
              prefetch: config.prefetch,
              leaseMs: config.leaseMs,
              pollMs: config.pollMs,
              ackDelayMs: config.ackDelayMs,
              rateLimits: config.rateLimits,
              taskTimeoutMs: config.taskTimeoutMs,
              backoff: { baseMs: config.backoffMs, maxMs: config.backoffMaxMs },
            });
      const nodeLogger = logger.child({ component: 'node' });
      node = new NodeRegistry({
        driver,
        info: {
          id: nodeId,
          host: hostname(),
          pid: process.pid,
          role: config.role,
          version: PACKAGE_VERSION,
          startedAt: Date.now(),
          heartbeatMs,
          concurrency: pool ? config.concurrency : 0,
        },
        activity: pool ? () => pool.activity() : undefined,
        onError: (err) => nodeLogger.warn({ err }, 'node heartbeat failed; the next one tries again'),
      });
      const app = await buildApp({
        queue,
        logger,
        pool,
        role: config.role,
        bodyLimit: config.bodyLimit,
        tokens: combineTokens({
          apiToken: config.apiToken,
          tokens: config.tokens,
          fileTokens: config.tokensFile === undefined ? undefined : readTokensFile(config.tokensFile),
        }),
        schedules,
        pages: dashboardRoutes,
        maxEventStreams: config.maxEventStreams,
        limits: {
          keepAliveTimeoutMs: config.keepAliveTimeoutMs,
          headersTimeoutMs: config.headersTimeoutMs,
          requestTimeoutMs: config.requestTimeoutMs,
          maxConnections: config.maxConnections,
        },
      });
      // Retention runs where the workers run, so API-only nodes stay light.
      const pruner = pool
        ? new Pruner(
            driver,
            {
              completedMs: config.retentionCompletedMs,
              failedMs: config.retentionFailedMs,
              auditMs: config.auditRetentionMs,
            },
            logger.child({ component: 'pruner' }),
          )
        : undefined;
      // Every worker process runs the scheduler; tick keys make each tick one task however many run.
      const scheduler = pool
        ? new Scheduler(queue, schedules, logger.child({ component: 'scheduler' }))
        : undefined;
      const operations = new OperationRunner({
        driver,
        bulk: queue.bulk,
        logger: logger.child({ component: 'operations' }),
        pollMs: config.pollMs,
      });
      return new TaskqNode(options, { app, queue, pool, pruner, scheduler, driver, operations, node });
    } catch (err) {
      await driver.close();
      throw err;
    }
  }

  /**
   * Starts what runs without a socket: change watching, the worker pool, the pruner and the
   * scheduler. `start` calls it after listening; tests that drive the app through inject() call
   * it alone.
   */
  startBackground(): void {
    // Nodes that serve the task API listen for changes from the start, so the first long-poll
    // does not wait on a LISTEN still being set up; worker-only nodes never listen to them.
    if (this.options.config.role !== 'worker') this.queue.startWatching();
    // Registered at once; then the lease keeper's timer (worker nodes) or its own sends heartbeats.
    void this.node.start({ ownTimer: !this.pool });
    this.pool?.start();
    this.pruner?.start();
    this.scheduler?.start();
    this.operations.start();
  }

  /** Listens and starts the workers; resolves with the address it listens on. */
  async start(): Promise<string> {
    const { config, logger } = this.options;
    const address = await this.app.listen({ port: config.port, host: config.host });
    if (!config.apiToken && !config.tokens && !config.tokensFile && !isLoopback(config.host)) {
      logger.warn(
        { host: config.host },
        'no API token is set and the API listens beyond this machine: anyone who can reach it can read and change tasks; set TASKQ_TOKENS (or TASKQ_API_TOKEN)',
      );
    }
    this.startBackground();
    logger.info(
      {
        address,
        role: config.role,
        db: this.driver.description,
        concurrency: config.concurrency,
        prefetch: config.prefetch,
      },
      'taskq is running',
    );
    return address;
  }

  /**
   * Graceful stop: refuse new requests, stop claiming, let running handlers finish within the
   * grace period, give unstarted tasks back, write every outcome, close the database.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const { config, logger } = this.options;
    logger.info({ graceMs: config.shutdownGraceMs }, 'shutting down');
    this.queue.stopWatching(); // ends long-polls and event streams, so the server can close
    await Promise.all([
      this.app.close(),
      this.pool?.stop({ graceMs: config.shutdownGraceMs }),
      this.pruner?.stop(),
      this.scheduler?.stop(),
      this.operations.stop(),
    ]);
    await this.node.stop();
    await this.queue.close();
    await this.driver.close();
    logger.info('stopped');
  }
}

/** Hosts only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}
