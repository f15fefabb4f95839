// The soak's failing action (the folder is passed to `taskq run --handlers`): it throws while the
// attempt is at most `data.fail`, so `{fail: 1}` completes on its first retry and `{fail: 3}` with
// max_attempts 3 ends failed after two retries. Thrown errors are nacks: retries with backoff.
import type { HandlerTask } from '../../../src/handlers/handler.js';

export default function flaky(task: HandlerTask): { output: number } {
  const fail = Number(task.data.fail ?? 0);
  if (task.attempt <= fail) throw new Error(`flaky: attempt ${task.attempt} of ${fail} planned failures`);
  return { output: task.attempt };
}
