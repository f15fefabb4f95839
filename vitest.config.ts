import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The fault suite has its own run (vitest.faults.config.ts, `npm run test:faults`).
    exclude: ['test/faults/**', '**/node_modules/**'],
    // Says once per run when PostgreSQL tests are skipped (and fails under CI without a URL).
    globalSetup: ['test/support/postgres.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: more workers only add contention to the timing-sensitive tests.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
