/** /healthz: for load balancers and orchestrators; never needs a token. */
import type { FastifyInstance } from 'fastify';
import type { QueueDriver } from '../../drivers/driver.js';
import type { WorkerPool } from '../../worker/worker-pool.js';
import { HealthSchema } from '../schemas.js';

export interface HealthDeps {
  driver: QueueDriver;
  pool?: WorkerPool;
  role: string;
}

export function healthRoutes(app: FastifyInstance, { driver, pool, role }: HealthDeps): void {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'Health: 200 when the database answers (and the workers can claim), 503 otherwise',
        tags: ['operations'],
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (_request, reply) => {
      const checks: Record<string, string> = {};
      let ok = true;
      try {
        await withTimeout(driver.ping(), 2000);
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
