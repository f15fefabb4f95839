/**
 * Attempt history (issue 11 part 1) on both drivers: every way an attempt ends is recorded by the
 * statement that ends it (ack, nack, rescue), with its node, times, error and stack; the history
 * is bounded; listings leave it out. First through the driver with an injected clock, then end to
 * end through a service and GET /tasks/:id.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/core/config.js';
import type { AttemptRecord, TaskRecord } from '../src/core/task.js';
import type { QueueDriver } from '../src/drivers/driver.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import pg from 'pg';
import { PostgresDriver } from '../src/drivers/postgres/postgres-driver.js';
import { appsOn, BOTH_DRIVERS, BOTH_SERVICE_DBS } from './support/drivers.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema } from './support/postgres.js';
import { newTask } from './support/factories.js';
import { finished } from './support/service.js';

const T0 = Date.UTC(2026, 0, 1);
const LEASE_MS = 1000;

describe.each(BOTH_DRIVERS)('attempt history in the %s driver', (_name, open, skip) => {
  let driver: QueueDriver;
  let cleanup: () => Promise<void>;
  afterEach(async () => {
    await driver?.close();
    await cleanup?.();
  });

  async function claimedTask(owner: string, now: number): Promise<TaskRecord> {
    const [claimed] = await driver.claimTasks({ owner, limit: 1, now, leaseMs: LEASE_MS });
    if (!claimed) throw new Error('nothing claimed');
    return claimed;
  }
  const lease = (t: TaskRecord, owner: string) => ({ id: t.id, seq: t.seq, owner, attempt: t.attempts });
  const historyOf = async (id: string): Promise<AttemptRecord[]> =>
    (await driver.getTask({ id }))?.attemptHistory ?? [];

  async function setup(maxAttempts = 10): Promise<string> {
    const opened = open();
    driver = opened.driver;
    cleanup = opened.cleanup;
    await driver.migrate();
    const [inserted] = await driver.insertTasks({ tasks: [newTask({ maxAttempts }, T0)], now: T0 });
    return (inserted as { task: TaskRecord }).task.id;
  }

  it.skipIf(skip)(
    'records an error with its stack, a timeout, then the completion, oldest first',
    async () => {
      const id = await setup();
      let t = await claimedTask('node-a', T0 + 10);
      await driver.failTasks({
        failures: [
          {
            ...lease(t, 'node-a'),
            startedAt: T0 + 11,
            error: 'boom',
            stack: 'Error: boom\n    at handler (send.ts:3:9)',
            ended: 'error',
            outcome: 'retry',
            retryAt: T0 + 20,
          },
        ],
        now: T0 + 15,
      });
      t = await claimedTask('node-b', T0 + 30);
      await driver.failTasks({
        failures: [
          {
            ...lease(t, 'node-b'),
            startedAt: T0 + 31,
            error: 'timed out after 5 ms',
            ended: 'timeout',
            outcome: 'retry',
            retryAt: T0 + 40,
          },
        ],
        now: T0 + 36,
      });
      t = await claimedTask('node-c', T0 + 50);
      await driver.completeTasks({
        completions: [{ ...lease(t, 'node-c'), startedAt: T0 + 52, result: { ok: true } }],
        now: T0 + 60,
      });
      expect(await historyOf(id)).toEqual([
        {
          attempt: 1,
          node: 'node-a',
          claimed_at: T0 + 10,
          started_at: T0 + 11,
          finished_at: T0 + 15,
          outcome: 'error',
          error: 'boom',
          stack: 'Error: boom\n    at handler (send.ts:3:9)',
        },
        {
          attempt: 2,
          node: 'node-b',
          claimed_at: T0 + 30,
          started_at: T0 + 31,
          finished_at: T0 + 36,
          outcome: 'timeout',
          error: 'timed out after 5 ms',
          stack: null,
        },
        {
          attempt: 3,
          node: 'node-c',
          claimed_at: T0 + 50,
          started_at: T0 + 52,
          finished_at: T0 + 60,
          outcome: 'completed',
          error: null,
          stack: null,
        },
      ]);
      // Listings do not carry it; the task itself does.
      const [listed] = await driver.listTasks({ limit: 10 });
      expect(listed?.attemptHistory).toEqual([]);
    },
  );

  it.skipIf(skip)('a task completed on its first try has that one attempt', async () => {
    const id = await setup();
    const t = await claimedTask('node-a', T0 + 10);
    await driver.completeTasks({
      completions: [{ ...lease(t, 'node-a'), startedAt: T0 + 11, result: { ok: true } }],
      now: T0 + 14,
    });
    expect(await historyOf(id)).toEqual([
      {
        attempt: 1,
        node: 'node-a',
        claimed_at: T0 + 10,
        started_at: T0 + 11,
        finished_at: T0 + 14,
        outcome: 'completed',
        error: null,
        stack: null,
      },
    ]);
  });

  it.skipIf(skip)('records a cancel, and a stale lease writes no attempt', async () => {
    const id = await setup();
    const t = await claimedTask('node-a', T0 + 10);
    // Another owner's (or attempt's) nack matches nothing, so it records nothing either.
    await driver.failTasks({
      failures: [{ ...lease(t, 'node-x'), error: 'late', ended: 'error', outcome: 'retry', retryAt: T0 }],
      now: T0 + 12,
    });
    expect(await historyOf(id)).toEqual([]);
    await driver.failTasks({
      failures: [
        { ...lease(t, 'node-a'), error: 'cancelled by request', ended: 'cancelled', outcome: 'cancelled' },
      ],
      now: T0 + 20,
    });
    const [attempt] = await historyOf(id);
    expect(attempt).toMatchObject({
      attempt: 1,
      node: 'node-a',
      started_at: null, // cancelled before its handler started
      finished_at: T0 + 20,
      outcome: 'cancelled',
      error: 'cancelled by request',
    });
    expect((await driver.getTask({ id }))?.status).toBe('cancelled');
  });

  it.skipIf(skip)(
    'the rescuer records lease_lost with the node that held it, or cancelled when asked to',
    async () => {
      const id = await setup();
      const t = await claimedTask('node-a', T0 + 10);
      await driver.extendLeases({
        owner: 'node-a',
        seqs: [t.seq],
        now: T0 + 20,
        leaseMs: LEASE_MS,
        started: [{ seq: t.seq, startedAt: T0 + 12 }],
      });
      const rescued = await driver.rescueExpiredLeases({ now: T0 + 20 + LEASE_MS + 1 });
      expect(rescued.requeued).toEqual([id]);
      expect(await historyOf(id)).toEqual([
        {
          attempt: 1,
          node: 'node-a',
          claimed_at: T0 + 10,
          started_at: T0 + 12,
          finished_at: T0 + 20 + LEASE_MS + 1,
          outcome: 'lease_lost',
          error: 'lease expired: the worker running it stopped renewing (attempt 1)',
          stack: null,
        },
      ]);
      // Second attempt: a cancel is requested, then its worker vanishes.
      const again = await claimedTask('node-b', T0 + 5000);
      await driver.cancelTask({ id, now: T0 + 5001 });
      await driver.rescueExpiredLeases({ now: T0 + 5000 + LEASE_MS + 1 });
      const history = await historyOf(id);
      expect(history.map((a) => [a.attempt, a.node, a.outcome])).toEqual([
        [1, 'node-a', 'lease_lost'],
        [again.attempts, 'node-b', 'cancelled'],
      ]);
    },
  );

  it.skipIf(skip)('keeps the newest attempts up to the bound (20 by default)', async () => {
    const id = await setup(30);
    for (let i = 0; i < 23; i++) {
      const now = T0 + i * 100;
      const t = await claimedTask('node-a', now);
      await driver.failTasks({
        failures: [
          { ...lease(t, 'node-a'), error: `e${i + 1}`, ended: 'error', outcome: 'retry', retryAt: now },
        ],
        now: now + 1,
      });
    }
    const history = await historyOf(id);
    expect(history).toHaveLength(20);
    expect(history.map((a) => a.attempt)).toEqual(Array.from({ length: 20 }, (_, i) => i + 4));
    expect(history[19]?.error).toBe('e23');
  });
});

describe.each(BOTH_SERVICE_DBS)('attempt history over HTTP on %s', (_name, database, skip) => {
  const startApp = appsOn(database);
  const start = (overrides: ConfigInput, handlers: HandlerDefinition[]) =>
    startApp({ backoffMs: 0, ...overrides }, handlers);

  const flaky: HandlerDefinition = {
    action: 'flaky',
    handle: (_task, ctx) => {
      if (ctx.attempt === 1) throw new Error('first attempt fails');
      return { attempt: ctx.attempt };
    },
  };
  const slow: HandlerDefinition = {
    action: 'slow',
    timeoutMs: 30,
    maxAttempts: 1,
    handle: (_task, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)),
  };

  it.skipIf(skip)(
    'GET /tasks/:id shows each attempt: the error with its stack, then the completion',
    async () => {
      const { http, service } = await start({}, [flaky]);
      const id = (await http('/tasks', { method: 'POST', json: { action: 'flaky' } })).body.id as string;
      const task = await finished(http, id);
      expect(task.status).toBe('completed');
      expect(task.node).toBeNull();
      const history = task.attempt_history as Record<string, unknown>[];
      expect(history.map((a) => [a.attempt, a.outcome, a.node])).toEqual([
        [1, 'error', service.node.id],
        [2, 'completed', service.node.id],
      ]);
      expect(history[0]?.error).toBe('first attempt fails');
      expect(history[0]?.stack).toMatch(/^Error: first attempt fails\n\s+at /);
      for (const a of history) {
        expect(Date.parse(a.finished_at as string)).toBeGreaterThanOrEqual(
          Date.parse(a.started_at as string),
        );
      }
      // Listings leave the history out.
      const list = await http('/tasks');
      expect(list.body.tasks[0]).not.toHaveProperty('attempt_history');
    },
  );

  it.skipIf(skip)('records a timeout, and keeps only --attempt-history attempts', async () => {
    const { http } = await start({ attemptHistory: 2 }, [
      slow,
      { action: 'fails', maxAttempts: 4, handle: () => Promise.reject(new Error('nope')) },
    ]);
    const slowId = (await http('/tasks', { method: 'POST', json: { action: 'slow' } })).body.id as string;
    const timedOut = await finished(http, slowId);
    expect(timedOut.status).toBe('failed');
    expect(timedOut.attempt_history).toMatchObject([
      { attempt: 1, outcome: 'timeout', error: 'timed out after 30 ms' },
    ]);

    const failsId = (await http('/tasks', { method: 'POST', json: { action: 'fails' } })).body.id as string;
    const failed = await finished(http, failsId);
    expect(failed.status).toBe('failed');
    expect((failed.attempt_history as { attempt: number }[]).map((a) => a.attempt)).toEqual([3, 4]);
  });
});

/**
 * How PostgreSQL stores a first-try completion (queries.ts, IMPLIED_COMPLETION): the node in
 * `completed_by` and no history, from which the entry above is derived; a history that already
 * has an entry is appended to as before; with no history kept, neither is written.
 */
describe.skipIf(postgresSkip() !== undefined)('a completion on PostgreSQL stores', () => {
  const url = postgresTestUrl() ?? '';
  const schema = randomSchema();
  let driver: PostgresDriver | undefined;
  afterEach(async () => {
    await driver?.close();
    await dropSchema(url, schema);
  });

  async function run(attemptHistoryMax: number, failFirst: boolean) {
    const store = new PostgresDriver({ connectionString: url, poolSize: 2, schema, attemptHistoryMax });
    driver = store;
    await store.migrate();
    const [inserted] = await store.insertTasks({ tasks: [newTask({ maxAttempts: 5 }, T0)], now: T0 });
    const { id } = (inserted as { task: TaskRecord }).task;
    const claim = async (now: number) => {
      const [t] = await store.claimTasks({ owner: 'node-a', limit: 1, now, leaseMs: LEASE_MS });
      return { id, seq: t!.seq, owner: 'node-a', attempt: t!.attempts };
    };
    if (failFirst) {
      const first = await claim(T0 + 1);
      await store.failTasks({
        failures: [{ ...first, error: 'e', ended: 'error', outcome: 'retry', retryAt: T0 }],
        now: T0 + 2,
      });
    }
    const last = await claim(T0 + 3);
    await store.completeTasks({ completions: [{ ...last, startedAt: T0 + 4, result: {} }], now: T0 + 5 });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ history: number | null; completed_by: string | null }>(
        `SELECT jsonb_array_length(attempt_history) AS history, completed_by FROM ${schema}.tasks`,
      );
      return { stored: rows[0], derived: (await store.getTask({ id }))?.attemptHistory ?? [] };
    } finally {
      await client.end();
    }
  }

  it('only the node when the history was empty', async () => {
    const { stored, derived } = await run(20, false);
    expect(stored).toEqual({ history: null, completed_by: 'node-a' });
    expect(derived.map((a) => [a.attempt, a.node, a.outcome])).toEqual([[1, 'node-a', 'completed']]);
  });

  it('the entry, appended, when the history had one', async () => {
    const { stored, derived } = await run(20, true);
    expect(stored).toEqual({ history: 2, completed_by: null });
    expect(derived.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'error'],
      [2, 'completed'],
    ]);
  });

  it('nothing when no history is kept', async () => {
    const { stored, derived } = await run(0, false);
    expect(stored).toEqual({ history: null, completed_by: null });
    expect(derived).toEqual([]);
  });
});
