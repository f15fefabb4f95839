/** GET /nodes: every taskq process live now or gone within the last hour (queue/nodes.ts). */
import type { FastifyInstance } from 'fastify';
import type { TaskQueue } from '../../queue/queue.js';
import { NodeList } from '../schemas.js';
import { toNodeListView } from '../views.js';

export function nodeRoutes(app: FastifyInstance, queue: TaskQueue): void {
  app.get(
    '/nodes',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'List the nodes (processes) live now and those gone in the last hour',
        description:
          'Each node heartbeats every third of --lease-ms; one that misses three, or stopped, is gone. `warning` is set when tasks are queued and no live node runs workers.',
        tags: ['operations'],
        response: { 200: NodeList },
      },
    },
    async () => {
      const now = Date.now();
      return toNodeListView(await queue.nodes(now), now);
    },
  );
}
