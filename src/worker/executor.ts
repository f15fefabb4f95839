/**
 * Runs one task's handler and reports how it ended. The handler gets an AbortSignal that fires on
 * timeout, cancellation, lease loss or shutdown; the executor stops waiting for the handler at that
 * moment even if the handler ignores the signal, so a hung handler frees its slot. Nothing a handler
 * throws, synchronously or asynchronously, escapes this function.
 *
 * A handler that returns at once (not a promise) needs neither a timer nor an AbortController, so
 * both are made only when needed: for a fast queue they are a real part of the work per task
 * (`npm run bench` measures a drain).
 */
import type { Logger } from 'pino';
import { coerceError, PermanentFailure, WaitForChildren } from '../core/errors.js';
import { TaskAbort, type Outcome } from '../core/outcome.js';
import type { TaskRecord } from '../core/task.js';
import type { HandlerContext, HandlerDefinition, HandlerTask } from '../handlers/handler.js';
import { toResult, waitForChildren } from '../handlers/handler.js';

import type { AbortKind } from '../core/retry.js';

// Homes in core/ (metrics and retries read them too); re-exported for the worker's own files.
export { TaskAbort };
export type { AbortKind, Outcome };

/**
 * How the worker pool aborts a running task. The AbortController behind `ctx.signal` is created
 * on first use (the handler reads `ctx.signal`, or returns a promise the executor must race).
 */
export class TaskAbortHandle {
  private controller: AbortController | null = null;
  /** Why the task was aborted, or null while it was not. The first reason wins. */
  reason: TaskAbort | null = null;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: TaskAbort): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

export interface ExecuteOptions {
  abort: TaskAbortHandle;
  timeoutMs: number;
  /** The task's child logger, created on first use. */
  logger: () => Logger;
  progress: (percent: number, message?: string) => Promise<void>;
  /**
   * ctx.enqueue, ctx.children and ctx.waitForChildren (the runner's, bound to this task); absent:
   * the first two reject, and the wait always ends the attempt.
   */
  enqueue?: HandlerContext['enqueue'];
  children?: HandlerContext['children'];
  waitForChildren?: HandlerContext['waitForChildren'];
}

const unavailable = (what: string) => () =>
  Promise.reject(new Error(`${what} is not available to this handler run (no queue)`));

export function toHandlerTask(task: TaskRecord): HandlerTask {
  return {
    id: task.id,
    action: task.action,
    data: task.data,
    attempt: task.attempts,
    maxAttempts: task.maxAttempts,
    priority: task.priority,
    createdAt: new Date(task.createdAt),
  };
}

export async function execute(
  task: TaskRecord,
  handler: HandlerDefinition,
  options: ExecuteOptions,
): Promise<Outcome> {
  const { abort } = options;
  const ctx: HandlerContext = {
    get signal() {
      return abort.signal;
    },
    attempt: task.attempts,
    get logger() {
      return options.logger();
    },
    progress: options.progress,
    enqueue: options.enqueue ?? unavailable('ctx.enqueue'),
    children: options.children ?? unavailable('ctx.children'),
    waitForChildren: options.waitForChildren ?? waitForChildren,
    resumed: task.waits,
  };
  try {
    let value = handler.handle(toHandlerTask(task), ctx);
    // Only a pending promise needs the timeout and the race against the signal: no timer can fire
    // while a handler runs synchronously.
    if (isThenable(value)) value = await settleWithin(value, abort, options.timeoutMs);
    if (abort.reason) return abortedOutcome(abort.reason);
    if (value instanceof WaitForChildren) return { kind: 'waiting' };
    try {
      return { kind: 'completed', result: toResult(value) };
    } catch (err) {
      return {
        kind: 'failed',
        error: `result is not JSON-serializable: ${coerceError(err).message}`,
        permanent: true,
      };
    }
  } catch (thrown) {
    if (abort.reason) return abortedOutcome(abort.reason);
    if (thrown instanceof WaitForChildren) return { kind: 'waiting' };
    const error = coerceError(thrown);
    return {
      kind: 'failed',
      error: error.message || error.name,
      permanent: error instanceof PermanentFailure,
      // Kept in the attempt's history (cut there); read only when the handler threw.
      stack: error.stack,
    };
  }
}

/** The handler's promise, or a rejection when the task is aborted or times out first. */
async function settleWithin(value: PromiseLike<unknown>, abort: TaskAbortHandle, timeoutMs: number) {
  const timer = setTimeout(
    () => abort.abort(new TaskAbort('timeout', `timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    return await Promise.race([value, abortPromise(abort.signal)]);
  } finally {
    clearTimeout(timer);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** Rejects with the signal's reason when it aborts. */
function abortPromise(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

function abortedOutcome(reason: unknown): Outcome {
  if (reason instanceof TaskAbort) return { kind: 'aborted', abort: reason };
  return { kind: 'aborted', abort: new TaskAbort('shutdown', coerceError(reason).message) };
}
