/**
 * What a handler is. A handler module (one file per action in the handlers folder) exports by
 * default either a function `(task, ctx) => result` or `defineHandler({ handle, ...options })`.
 * The resolved value becomes the task's result; a thrown error is a nack (the task is retried
 * with backoff until max_attempts); `PermanentFailure` fails the task at once.
 */
import type { Logger } from 'pino';
import { JsonText, type JsonObject } from '../core/task.js';

export interface HandlerTask {
  id: string;
  action: string;
  data: JsonObject;
  /** 1 on the first run, 2 on the first retry, ... */
  attempt: number;
  maxAttempts: number;
  priority: number;
  createdAt: Date;
}

export interface HandlerContext {
  /** Aborted when the task times out, is cancelled, loses its lease, or the service shuts down. */
  signal: AbortSignal;
  attempt: number;
  /** A pino child logger carrying the task id and action. */
  logger: Logger;
  /** Reports progress (0..100) and an optional message, shown on the task and its event stream. */
  progress(percent: number, message?: string): Promise<void>;
}

export type TaskHandler = (task: HandlerTask, ctx: HandlerContext) => unknown;

export interface HandlerOptions {
  /** The action name; defaults to the module's file name without extension. */
  action?: string;
  handle: TaskHandler;
  /** Abort and nack after this long; defaults to --task-timeout-ms. */
  timeoutMs?: number;
  /** Default max_attempts for tasks of this action when the producer gives none. */
  maxAttempts?: number;
  /** At most this many tasks of this action run at once in one process. */
  concurrency?: number;
  /** Retry backoff for this action. */
  backoff?: { baseMs: number; maxMs: number };
}

export interface HandlerDefinition extends HandlerOptions {
  action: string;
}

/** Typed helper for handler modules: `export default defineHandler({ handle: async (task) => ... })`. */
export function defineHandler(options: HandlerOptions): HandlerOptions {
  return options;
}

/**
 * The handler's return value as JSON text, serialised once here (the driver stores the text as
 * it is). Undefined, and anything else JSON has no text for (a function), becomes null; a value
 * JSON cannot hold (a BigInt, a cycle) throws.
 */
export function toResult(value: unknown): JsonText {
  return new JsonText(JSON.stringify(value) ?? 'null');
}
