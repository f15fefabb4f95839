/** The layer rule of eslint.config.js fires on an import that points the wrong way, and only then. */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// Only the layer rule, and no type information: the snippets need no program to be checked.
const eslint = new ESLint({
  overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parserOptions: { project: false } } }],
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
});

async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => m.message);
}

describe('layers', () => {
  it('refuses an import from a folder above or beside', async () => {
    const cases: [string, string][] = [
      ['src/api/routes/health.ts', "import type { WorkerPool } from '../../worker/worker-pool.js';"],
      ['src/api/app.ts', "import { dashboardRoutes } from '../dashboard/routes.js';"],
      ['src/api/app.ts', "import type { QueueDriver } from '../drivers/driver.js';"],
      ['src/queue/queue.ts', "import type { FastifyInstance } from '../api/app.js';"],
      ['src/core/task.ts', "import type { TaskQueue } from '../queue/queue.js';"],
      ['src/drivers/sqlite/sqlite-driver.ts', "import { TaskqNode } from '../../service.js';"],
    ];
    for (const [file, code] of cases) {
      const errors = await layerErrors(file, `${code}\nexport {};\n`);
      expect(errors, `${file}: ${code}`).toEqual([expect.stringContaining('(layers: eslint.config.js)')]);
    }
  });

  it('allows imports that point down, and composition in service.ts and cli/', async () => {
    const cases: [string, string][] = [
      ['src/api/routes/tasks.ts', "import type { TaskQueue } from '../../queue/queue.js';"],
      ['src/worker/producer.ts', "import type { QueueDriver } from '../drivers/driver.js';"],
      ['src/service.ts', "import { WorkerPool } from './worker/worker-pool.js';"],
      ['src/cli/commands/run.ts', "import { openDriver } from '../../drivers/open-driver.js';"],
    ];
    for (const [file, code] of cases) {
      expect(await layerErrors(file, `${code}\nexport {};\n`), `${file}: ${code}`).toEqual([]);
    }
  });
});
