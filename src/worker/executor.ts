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
  logger: Logger;
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
  const { controller, logger } = options;
  const timer = setTimeout(
    () => controller.abort(new TaskAbort('timeout', `timed out after ${options.timeoutMs} ms`)),
    options.timeoutMs,
  );
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(controller.signal.reason);
    if (controller.signal.aborted) onAbort();
    else controller.signal.addEventListener('abort', onAbort, { once: true });
  });
  const ctx = { signal: controller.signal, attempt: task.attempts, logger, progress: options.progress };
  try {
    const value = await Promise.race([
      Promise.resolve().then(() => handler.handle(toHandlerTask(task), ctx)),
      aborted,
    ]);
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

function abortedOutcome(reason: unknown): Outcome {
  if (reason instanceof TaskAbort) return { kind: 'aborted', abort: reason };
  return { kind: 'aborted', abort: new TaskAbort('shutdown', coerceError(reason).message) };
}
