/**
 * Runs one task's handler and reports how it ended. The handler gets an AbortSignal that fires on
 * timeout, cancellation, lease loss or shutdown; the executor stops waiting for the handler at that
 * moment even if the handler ignores the signal, so a hung handler frees its slot. Nothing a handler
 * throws, synchronously or asynchronously, escapes this function.
 */
import type { Logger } from 'pino';
import { coerceError, PermanentFailure } from '../core/errors.js';
import type { JsonValue, TaskRecord } from '../core/task.js';
import type { HandlerDefinition, HandlerTask } from '../handlers/handler.js';
import { toResult } from '../handlers/handler.js';

export type AbortKind = 'timeout' | 'cancel' | 'lease_lost' | 'shutdown';

/** The reason given to `AbortController.abort()`, so handlers can tell why (`ctx.signal.reason`). */
export class TaskAbort extends Error {
  constructor(
    readonly kind: AbortKind,
    message: string,
  ) {
    super(message);
    this.name = 'TaskAbort';
  }
}

export type Outcome =
  | { kind: 'completed'; result: JsonValue }
  | { kind: 'failed'; error: string; permanent: boolean }
  | { kind: 'aborted'; abort: TaskAbort };

export interface ExecuteOptions {
  controller: AbortController;
  timeoutMs: number;
  /** The task's child logger, created on first use. */
  logger: () => Logger;
  progress: (percent: number, message?: string) => Promise<void>;
}

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
  const { controller } = options;
  const timer = setTimeout(
    () => controller.abort(new TaskAbort('timeout', `timed out after ${options.timeoutMs} ms`)),
    options.timeoutMs,
  );
  const ctx = {
    signal: controller.signal,
    attempt: task.attempts,
    get logger() {
      return options.logger();
    },
    progress: options.progress,
  };
  try {
    let value = handler.handle(toHandlerTask(task), ctx);
    // Only a pending promise needs the race against the signal; a synchronous result does not.
    if (isThenable(value)) value = await Promise.race([value, abortPromise(controller.signal)]);
    if (controller.signal.aborted) return abortedOutcome(controller.signal.reason);
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
    if (controller.signal.aborted) return abortedOutcome(controller.signal.reason);
    const error = coerceError(thrown);
    return {
      kind: 'failed',
      error: error.message || error.name,
      permanent: error instanceof PermanentFailure,
    };
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
