/**
 * The completer when results cannot be written, on both drivers (real databases; only the result
 * writes are made to fail, by wrapping the driver): claims pause at the backlog bound instead of
 * piling up results, the pool reports itself unhealthy after a lease, everything is written when
 * writes work again, and one result the database refuses does not hold the others back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { TaskRecord } from '../src/core/task.js';
import type { CompleteTasksParams, QueueDriver } from '../src/drivers/driver.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import type { WorkerPool } from '../src/worker/worker-pool.js';
import { makePool, newTask } from './support/pool.js';
import { BOTH_DRIVERS } from './support/drivers.js';
import { checkedOn, nextSignal, onSignal } from './support/signals.js';

/** The real driver, except that completeTasks runs through `completeTasks` given here. */
function withFaultyCompletions(
  driver: QueueDriver,
  completeTasks: (params: CompleteTasksParams, real: QueueDriver) => Promise<void>,
): QueueDriver {
  return new Proxy(driver, {
    get(target, property, receiver) {
      if (property === 'completeTasks') return (params: CompleteTasksParams) => completeTasks(params, target);
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const echo: HandlerDefinition = { action: 'echo', handle: async (task) => task.data };

describe.each(BOTH_DRIVERS)('completer faults on %s', (_name, open, skip) => {
  let stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.reverse()) await stop();
    stops = [];
  });

  async function setup(completeTasks: (params: CompleteTasksParams, real: QueueDriver) => Promise<void>) {
    const { driver, cleanup } = open();
    await driver.migrate();
    const faulty = withFaultyCompletions(driver, completeTasks);
    stops.push(async () => {
      await driver.close();
      await cleanup();
    });
    return { driver, faulty };
  }

  function startPool(pool: WorkerPool) {
    pool.start();
    stops.push(() => pool.stop({ graceMs: 1000 }));
    return pool;
  }

  it.skipIf(skip)(
    'pauses claims at the backlog bound while writes fail, turns unhealthy, then writes everything',
    async () => {
      let down = true;
      const { driver, faulty } = await setup(async (params, real) => {
        if (down) throw new Error('injected: database refuses the write');
        return real.completeTasks(params);
      });
      await driver.insertTasks({
        tasks: Array.from({ length: 40 }, () => newTask({ action: 'echo' })),
        now: Date.now(),
      });
      const pool = startPool(
        makePool(faulty, [echo], {
          concurrency: 2,
          prefetch: 2,
          leaseMs: 300,
          resultsBacklogMax: 10,
          ackDelayMs: 1,
        }),
      );

      // The producer stops claiming once 10 results wait: it holds no more than the bound plus its slots.
      await nextSignal(pool.producer, 'claimSkipped', (reason) => reason === 'results_backlog');
      const running = await driver.countTasks();
      expect(running.byStatus.running).toBeLessThanOrEqual(10 + 4);
      expect(running.byStatus.queued).toBeGreaterThanOrEqual(40 - 14);
      // Unhealthy once writes have failed for a lease; each retry (backoff 50, 100, 200 ms ...) is a look.
      const unhealthy = await checkedOn(onSignal(pool.completer, 'writeFailed'), () => {
        const health = pool.health();
        return health.ok ? null : health;
      });
      expect(unhealthy.reason).toMatch(/cannot write task results for \d+ ms \(\d+ waiting\): injected/);

      down = false;
      await checkedOn(
        onSignal(pool, 'resultsWritten'),
        async () => (await driver.countTasks()).byStatus.completed === 40,
        20_000,
      );
      expect(pool.health()).toEqual({ ok: true });
    },
  );

  it.skipIf(skip)(
    'records a result the database refuses as that task failing, and writes the others',
    async () => {
      const isPoison = (c: CompleteTasksParams['completions'][number]) =>
        JSON.stringify(c.result).includes('poison');
      const { driver, faulty } = await setup(async (params, real) => {
        if (params.completions.some(isPoison)) throw new Error('injected: value too long for type');
        return real.completeTasks(params);
      });
      const inserted = await driver.insertTasks({
        tasks: [
          newTask({ action: 'echo', data: { n: 1 } }),
          newTask({ action: 'echo', data: { poison: true } }),
          newTask({ action: 'echo', data: { n: 3 } }),
        ],
        now: Date.now(),
      });
      // A long ack delay so the three results share one batch, which then fails as a whole.
      const pool = startPool(makePool(faulty, [echo], { concurrency: 3, prefetch: 0, ackDelayMs: 50 }));
      const [good1, poison, good3] = inserted.map((r) => r.task.id) as [string, string, string];
      const final = async (id: string): Promise<TaskRecord> =>
        checkedOn(
          (wake) => driver.on('tasksChanged', wake),
          async () => {
            const task = await driver.getTask({ id });
            return task && (task.status === 'completed' || task.status === 'failed') ? task : null;
          },
        );
      expect((await final(good1)).result).toEqual({ n: 1 });
      expect((await final(good3)).result).toEqual({ n: 3 });
      const refused = await final(poison);
      expect(refused.status).toBe('failed');
      expect(refused.error).toMatch(/^the result could not be stored: injected: value too long/);
      expect(pool.health()).toEqual({ ok: true });
    },
  );
});
