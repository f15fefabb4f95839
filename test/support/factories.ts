/** Fixtures built the same way everywhere (tests, contract suite, benchmarks), inserted through a driver. */
import type { NewTask } from '../../src/core/task.js';

/** A new task with plain defaults; `now` sets run_at and created_at. */
export function newTask(overrides: Partial<NewTask> = {}, now = Date.now()): NewTask {
  return {
    action: 'noop',
    data: {},
    priority: 0,
    runAt: now,
    maxAttempts: 3,
    uniqueKey: null,
    uniqueUntil: null,
    createdAt: now,
    traceparent: null,
    tracestate: null,
    ...overrides,
  };
}
