/**
 * Builds the HTTP app without listening: tests call `app.inject()` or listen on port 0, and only
 * the `run` command binds the configured port.
 */
import swagger from '@fastify/swagger';
import { BODY_LIMIT_DEFAULT } from '../core/config.js';
import { PACKAGE_VERSION } from '../core/version.js';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type RouteOptions,
} from 'fastify';
import type { Logger } from 'pino';
import type { TaskQueue } from '../queue/queue.js';
import type { WorkerStatus } from '../core/worker-status.js';
import { installAuth } from './auth.js';
import type { ApiToken } from '../core/tokens.js';
import { auditRoutes, installAudit } from './routes/audit.js';
import {
  clientErrorHandler,
  frameworkErrors,
  installErrorHandlers,
  installHostCheck,
  MAX_PARAM_LENGTH,
} from './error-handler.js';
import { installMetrics } from './metrics.js';
import { installJsonParser } from './json-body.js';
import { StreamSlots } from './stream-slots.js';
import { operationRoutes } from './routes/operations.js';
import { healthRoutes } from './routes/health.js';
import { taskRoutes } from './routes/tasks.js';
import { scheduleRoutes } from './routes/schedules.js';
import { actionRoutes } from './routes/actions.js';
import { bulkRoutes } from './routes/bulk.js';
import { metaRoutes } from './routes/meta.js';
import type { Schedule } from '../core/schedule.js';
import { AttemptSchema, ErrorSchema, OperationSchema, TaskSchema } from './schemas.js';
import { nodeRoutes } from './routes/nodes.js';
import { validatorCompiler } from './validation.js';

export interface AppDeps {
  /** Recurring tasks, listed at GET /schedules. */
  schedules?: readonly Schedule[];
  queue: TaskQueue;
  logger: Logger;
  /** The workers of this process, for /healthz and /metrics; absent on an API-only node. */
  pool?: WorkerStatus;
  /**
   * Pages served beside the API where it is served (the dashboard). The composition root passes
   * them, so api/ does not import its sibling dashboard/.
   */
  pages?: (app: FastifyInstance) => void;
  /** 'api' serves the task routes and the dashboard; 'worker' only /healthz and /metrics. */
  role: 'all' | 'api' | 'worker';
  bodyLimit?: number;
  /**
   * The scoped tokens (core/tokens.ts); with any, every route but /healthz and the dashboard
   * shell needs `Authorization: Bearer <secret>` of one with the route's scope.
   */
  tokens?: readonly ApiToken[];
  /** Event streams open at once; absent: no cap. */
  maxEventStreams?: number;
  /** Connection limits of the HTTP server; absent: Node's and Fastify's defaults. */
  limits?: ServerLimits;
  /** Called for every route as it is registered (tests check each one is documented). */
  onRoute?: (route: RouteOptions) => void;
}

/**
 * The connection settings of docs/deployment.md, in milliseconds and counts (0: no limit). There
 * is deliberately no maxRequestsPerSocket: Node only marks the last answer `Connection: close`,
 * keeps the socket, and answers a pipelined request after it with a bare 503.
 */
export interface ServerLimits {
  keepAliveTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const limits = deps.limits;
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimit ?? BODY_LIMIT_DEFAULT,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    clientErrorHandler,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors,
    http: {
      requireHostHeader: false,
      ...(limits && {
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        // Node checks both timeouts on this period (30 s by default), so it bounds their precision.
        connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(limits.headersTimeoutMs / 4))),
      }),
    },
    // Fastify sets these on the server after creating it, so they go here, not in `http`.
    ...(limits && {
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
    }),
  });
  if (limits && limits.maxConnections > 0) app.server.maxConnections = limits.maxConnections;
  // The API speaks JSON only; without this, text/plain bodies would reach the schema as strings.
  app.removeContentTypeParser('text/plain');
  installJsonParser(app);
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute);
  app.setValidatorCompiler(validatorCompiler);
  app.addSchema(ErrorSchema);
  app.addSchema(AttemptSchema);
  app.addSchema(TaskSchema);
  app.addSchema(OperationSchema);
  installErrorHandlers(app);
  installHostCheck(app);
  installAuth(app, deps.tokens ?? []);
  installAudit(app, deps.queue);
  // Request logs are at debug level: at info they would cost more than the queue itself under load.
  if (deps.logger.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug(
        { method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime },
        'request',
      );
    });
  }
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'taskq', version: PACKAGE_VERSION, description: 'A durable task queue over HTTP' },
      tags: [{ name: 'tasks' }, { name: 'operations' }, { name: 'dashboard' }],
    },
  });
  app.get('/openapi.json', { config: { scope: 'read' }, schema: { hide: true } }, async () => app.swagger());

  healthRoutes(app, { queue: deps.queue, pool: deps.pool, role: deps.role });
  installMetrics(app, { queue: deps.queue, pool: deps.pool });
  if (deps.role !== 'worker') {
    const streams = new StreamSlots(deps.maxEventStreams ?? Infinity);
    taskRoutes(app, deps.queue, streams);
    operationRoutes(app, deps.queue, streams);
    scheduleRoutes(app, deps.queue, deps.schedules ?? []);
    actionRoutes(app, deps.queue, deps.schedules ?? []);
    bulkRoutes(app, deps.queue, streams);
    metaRoutes(app);
    nodeRoutes(app, deps.queue);
    auditRoutes(app, deps.queue);
    deps.pages?.(app);
  }
  await app.ready();
  return app;
}
