/** The executor: one handler call, its timeout, and the AbortSignal it creates only on demand. */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { JsonText, type TaskRecord } from '../src/core/task.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { execute, TaskAbort, TaskAbortHandle } from '../src/worker/executor.js';

const task = {
  id: 't1',
  action: 'a',
  data: {},
  attempts: 1,
  maxAttempts: 3,
  priority: 0,
  createdAt: 0,
} as TaskRecord;
const logger = pino({ level: 'silent' });

function run(handle: HandlerDefinition['handle'], abort = new TaskAbortHandle(), timeoutMs = 1000) {
  return execute(
    task,
    { action: 'a', handle },
    { abort, timeoutMs, logger: () => logger, progress: async () => {} },
  );
}

describe('execute', () => {
  it('completes a synchronous handler, which may still read a live signal', async () => {
    let aborted: boolean | undefined;
    const outcome = await run((_task, ctx) => {
      aborted = ctx.signal.aborted;
      return 'ok';
    });
    expect(outcome).toEqual({ kind: 'completed', result: new JsonText('"ok"') });
    expect(aborted).toBe(false);
  });

  it('gives a signal that is already aborted, with the first reason, when the abort came first', async () => {
    const abort = new TaskAbortHandle();
    abort.abort(new TaskAbort('cancel', 'cancelled by request'));
    abort.abort(new TaskAbort('shutdown', 'ignored: the first reason wins'));
    let reason: unknown;
    const outcome = await run((_task, ctx) => {
      reason = ctx.signal.reason;
      return 'late';
    }, abort);
    expect((reason as TaskAbort).kind).toBe('cancel');
    expect(outcome).toMatchObject({ kind: 'aborted', abort: { kind: 'cancel' } });
  });

  it('aborts a promise that outlives the timeout, and tells the handler through its signal', async () => {
    let sawAbort = false;
    const outcome = await run(
      (_task, ctx) =>
        new Promise(() => {
          ctx.signal.addEventListener('abort', () => (sawAbort = true));
        }),
      new TaskAbortHandle(),
      30,
    );
    expect(outcome).toMatchObject({ kind: 'aborted', abort: { kind: 'timeout' } });
    expect(sawAbort).toBe(true);
  });

  it('aborts a running promise when the pool aborts the task', async () => {
    const abort = new TaskAbortHandle();
    const pending = run(() => new Promise(() => {}), abort);
    abort.abort(new TaskAbort('lease_lost', 'lease lost'));
    expect(await pending).toMatchObject({ kind: 'aborted', abort: { kind: 'lease_lost' } });
  });
});
