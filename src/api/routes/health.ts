/** /healthz: for load balancers and orchestrators; never needs a token. */
import type { FastifyInstance } from 'fastify';
import type { WorkerStatus } from '../../core/worker-status.js';
import type { TaskQueue } from '../../queue/queue.js';
import { HealthSchema } from '../schemas.js';

export interface HealthDeps {
  queue: TaskQueue;
  pool?: WorkerStatus;
  role: string;
}

export function healthRoutes(app: FastifyInstance, { queue, pool, role }: HealthDeps): void {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'Health: 200 when the database answers (and the workers can claim), 503 otherwise',
        description:
          'On nodes that run workers, `checks.workers` is unhealthy (503) while claims and lease renewals have ' +
          'failed for longer than a lease; while the event loop is blocked for longer than half a lease and ' +
          'for one lease after it frees ("event loop blocked for N ms"); and for one lease after a heartbeat ' +
          'found held tasks taken by another worker ("leases lost"). Each turns 200 again by itself.',
        tags: ['operations'],
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (_request, reply) => {
      const checks: Record<string, string> = {};
      let ok = true;
      try {
        await withTimeout(queue.ping(), 2000);
        checks.database = 'ok';
      } catch (err) {
        ok = false;
        checks.database = (err as Error).message;
      }
      if (pool) {
        const health = pool.health();
        checks.workers = health.ok ? 'ok' : (health.reason ?? 'unhealthy');
        ok &&= health.ok;
      }
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', role, checks });
    },
  );
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
