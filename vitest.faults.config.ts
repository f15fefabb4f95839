import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:faults`): servers killed, databases restarted, disks filled,
 * processes frozen. Kept out of `npm test` because each case owns machine resources (a private
 * PostgreSQL cluster, a tmpfs mount) and runs alone; `.ci/run` runs it after the main suite.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.test.ts'],
    globalSetup: ['test/support/postgres.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // One file at a time: the cases stop and start shared resources and measure recovery.
    fileParallelism: false,
    reporters: ['default'],
  },
});
