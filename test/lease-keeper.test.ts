/**
 * The lease keeper renews exactly the tasks the process still holds or owes a result for, on both
 * drivers: a task of the same owner it no longer holds (its give-back failed, its result was
 * dropped) is left to expire and be rescued, instead of being renewed for as long as the process
 * holds anything else.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DbHealth } from '../src/worker/db-health.js';
import { LeaseKeeper } from '../src/worker/lease-keeper.js';
import { newTask } from './support/factories.js';
import { BOTH_DRIVERS } from './support/drivers.js';

const T0 = 1_700_000_000_000;
const LEASE = 1000;

describe.each(BOTH_DRIVERS)('lease keeper on %s', (_name, open, skip) => {
  it.skipIf(skip)(
    'renews held tasks and unwritten results only; an abandoned task of the owner expires and is rescued',
    async () => {
      const { driver, cleanup } = open();
      try {
        await driver.migrate();
        const tasks = Array.from({ length: 3 }, () => newTask({}, T0));
        await driver.insertTasks({ tasks, now: T0 });
        const [held, awaiting, abandoned] = await driver.claimTasks({
          owner: 'w',
          limit: 3,
          now: T0,
          leaseMs: LEASE,
        });
        let now = T0;
        const keeper = new LeaseKeeper({
          driver,
          owner: 'w',
          leaseMs: LEASE,
          now: () => now,
          health: new DbHealth(pino({ level: 'silent' })),
          held: () => [held!],
          awaitingResult: () => [awaiting!],
          onLeaseLost: () => {},
          onCancelRequested: () => {},
        });
        for (let beat = 1; beat <= 3; beat++) {
          now = T0 + beat * (LEASE / 2);
          await keeper.beat();
        }
        const rescued = await driver.rescueExpiredLeases({ now: now + 1 });
        expect(rescued.requeued).toEqual([abandoned!.id]);
        expect((await driver.getTask({ id: held!.id }))?.leaseExpiresAt).toBe(now + LEASE);
        expect((await driver.getTask({ id: awaiting!.id }))?.leaseExpiresAt).toBe(now + LEASE);
      } finally {
        await driver.close();
        await cleanup();
      }
    },
  );
});
