/**
 * The whole app of a `role: 'all'` node (dashboard included) on a fresh SQLite file, with every
 * route as it was registered: for tests that walk the route table (openapi, tokens).
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/api/app.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import { openDriver } from '../../src/drivers/open-driver.js';
import { BUILTIN_HANDLERS } from '../../src/handlers/builtin.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { TaskQueue } from '../../src/queue/queue.js';
import { tempDbPath } from './temp.js';

export interface RoutedApp {
  app: FastifyInstance;
  routes: RouteOptions[];
  close: () => Promise<void>;
}

export async function appWithRoutes(
  pages: (app: FastifyInstance) => void = dashboardRoutes,
): Promise<RoutedApp> {
  const db = tempDbPath();
  const driver = await openDriver({ db: db.path, sync: 'normal', pgPoolSize: 1 });
  const close = async () => {
    await driver.close();
    db.cleanup();
  };
  try {
    await driver.migrate();
    const queue = new TaskQueue({
      driver,
      registry: new HandlerRegistry([...BUILTIN_HANDLERS], false),
      defaultMaxAttempts: 3,
    });
    const routes: RouteOptions[] = [];
    const app = await buildApp({
      queue,
      logger: pino({ level: 'silent' }),
      role: 'all',
      pages,
      onRoute: (r) => routes.push(r),
    });
    return {
      app,
      routes,
      close: async () => {
        await app.close();
        await close();
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}
