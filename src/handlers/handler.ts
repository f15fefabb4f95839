/**
 * What a handler is. A handler module (one file per action in the handlers folder) exports by
 * default either a function `(task, ctx) => result` or `defineHandler({ handle, ...options })`.
 * The resolved value becomes the task's result; a thrown error is a nack (the task is retried
 * with backoff until max_attempts); `PermanentFailure` fails the task at once.
 *
 * A module's options are checked when it is loaded (parseHandlerOptions): each number is held to
 * the range of the setting it overrides, and an unknown option is refused with a suggestion, so a
 * typo fails the start with one line instead of being ignored.
 */
import type { Logger } from 'pino';
import { SETTINGS, unknownName } from '../core/config.js';
import { ConfigError, WaitForChildren } from '../core/errors.js';
import { CONCURRENCY_PER_KEY_MAX, rateLimitOf } from '../core/flow.js';
import {
  JsonText,
  type DependencyFailurePolicy,
  type JsonObject,
  type JsonValue,
  type TaskStatus,
} from '../core/task.js';

/**
 * What `ctx.waitForChildren()` does when the run has children to wait for: it ends the attempt,
 * as a control-flow rejection (the executor catches it).
 */
export function waitForChildren(): Promise<never> {
  return Promise.reject(new WaitForChildren());
}

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

/** Options of a child task (`ctx.enqueue`); the same as a POST /tasks body's, camel-cased. */
export interface ChildOptions {
  priority?: number;
  maxAttempts?: number;
  delayMs?: number;
  concurrencyKey?: string;
  /** Ids of tasks (other children, say) the child must wait for. */
  dependsOn?: string[];
  onDependencyFailure?: DependencyFailurePolicy;
  /**
   * Deduplicates the child. By default a child's key is made from the parent's id, the wait it
   * belongs to and its position among this run's `ctx.enqueue` calls, so a run repeated after a
   * crash finds the children it enqueued before instead of enqueuing them again.
   */
  uniqueKey?: string;
}

/** A child as its resumed parent sees it (`ctx.children()`). */
export interface ChildTask {
  id: string;
  action: string;
  status: TaskStatus;
  /** The child's result when it completed, else null. */
  result: JsonValue | null;
  error: string | null;
}

export interface HandlerContext {
  /** Aborted when the task times out, is cancelled, loses its lease, or the service shuts down. */
  signal: AbortSignal;
  attempt: number;
  /** A pino child logger carrying the task id and action. */
  logger: Logger;
  /** Reports progress (0..100) and an optional message, shown on the task and its event stream. */
  progress(percent: number, message?: string): Promise<void>;
  /**
   * Enqueues a child of this task (fan-out); resolves once it is committed, with its id. The
   * child is linked to this task (`parent_id`) in the same insert, so nothing is lost when the
   * worker dies before the handler ends.
   */
  enqueue(
    action: string,
    data?: JsonObject,
    options?: ChildOptions,
  ): Promise<{ id: string; status: TaskStatus }>;
  /**
   * Ends this attempt and resumes the task when every child has finished (fan-in): use it as
   * `return ctx.waitForChildren()` (it rejects with WaitForChildren, which ends the attempt). A
   * child that fails for good fails this task too, unless the task was enqueued with
   * `on_dependency_failure: "run"`. A task with no children has nothing to wait for: the call
   * resolves at once with `[]` and the run goes on (returned, the task completes with `[]`).
   */
  waitForChildren(): Promise<ChildTask[]>;
  /** This task's children, oldest first, with their results (read when called). */
  children(): Promise<ChildTask[]>;
  /** How many times this task has waited for children before this run: 0 on a first run. */
  resumed: number;
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
  /**
   * At most `perSecond` tasks of this action claimed a second across every worker, with up to
   * `burst` (default 1) at once; `--rate-limit` wins over it (docs/flow-control.md).
   */
  rateLimit?: { perSecond: number; burst?: number };
  /** At most this many tasks with the same `concurrency_key` running at once across every worker. */
  concurrencyPerKey?: number;
}

export interface HandlerDefinition extends HandlerOptions {
  action: string;
}

/** Typed helper for handler modules: `export default defineHandler({ handle: async (task) => ... })`. */
export function defineHandler(options: HandlerOptions): HandlerOptions {
  return options;
}

/** The error for a module whose default export is no handler. */
export const NOT_A_HANDLER = 'the default export must be a function or defineHandler({ handle })';

const OPTION_NAMES = [
  'action',
  'handle',
  'timeoutMs',
  'maxAttempts',
  'concurrency',
  'backoff',
  'rateLimit',
  'concurrencyPerKey',
] as const;
const BACKOFF_NAMES = ['baseMs', 'maxMs'] as const;
const RATE_LIMIT_NAMES = ['perSecond', 'burst'] as const;
/** The setting whose range each numeric option must keep to. */
type RangeSetting = 'taskTimeoutMs' | 'maxAttempts' | 'concurrency' | 'backoffMs' | 'backoffMaxMs';

/** The fields of a plain object, refusing any not in `known`. */
function fieldsOf(where: string, value: object, known: readonly string[]): Map<string, unknown> {
  const entries: [string, unknown][] = Object.entries(value);
  for (const [key] of entries) {
    if (!known.includes(key)) throw new ConfigError(`${where}: ${unknownName('option', key, known)}`);
  }
  return new Map(entries);
}

function shown(value: unknown): string {
  return `${typeof value} ${JSON.stringify(value) ?? ''}`.trim();
}

function numberOption(name: string, value: unknown, range: RangeSetting): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw new ConfigError(`${name}: expected a number, got ${shown(value)}`);
  return SETTINGS[range].kind.parse(value, name);
}

/**
 * The options a handler module exported, checked; `where` (e.g. `handler /path/resize.ts`)
 * starts every error message.
 */
export function parseHandlerOptions(where: string, value: object): HandlerOptions {
  const fields = fieldsOf(where, value, OPTION_NAMES);
  const handle = fields.get('handle');
  if (typeof handle !== 'function') {
    throw new ConfigError(`${where}: ${NOT_A_HANDLER}`);
  }
  const action = fields.get('action');
  if (action !== undefined && typeof action !== 'string') {
    throw new ConfigError(`${where}: action: expected a string, got ${shown(action)}`);
  }
  const options: HandlerOptions = {
    // A function's parameters cannot be checked at run time; its type is the module's promise.
    handle: handle as TaskHandler,
    action,
    timeoutMs: numberOption(`${where}: timeoutMs`, fields.get('timeoutMs'), 'taskTimeoutMs'),
    maxAttempts: numberOption(`${where}: maxAttempts`, fields.get('maxAttempts'), 'maxAttempts'),
    concurrency: numberOption(`${where}: concurrency`, fields.get('concurrency'), 'concurrency'),
  };
  const backoff = fields.get('backoff');
  if (backoff !== undefined) {
    if (backoff === null || typeof backoff !== 'object') {
      throw new ConfigError(`${where}: backoff: expected { baseMs, maxMs }, got ${shown(backoff)}`);
    }
    const parts = fieldsOf(`${where}: backoff`, backoff, BACKOFF_NAMES);
    const part = (key: 'baseMs' | 'maxMs', range: RangeSetting) => {
      const ms = numberOption(`${where}: backoff.${key}`, parts.get(key), range);
      if (ms === undefined) throw new ConfigError(`${where}: backoff.${key} is missing`);
      return ms;
    };
    options.backoff = { baseMs: part('baseMs', 'backoffMs'), maxMs: part('maxMs', 'backoffMaxMs') };
  }
  const rateLimit = fields.get('rateLimit');
  if (rateLimit !== undefined) {
    if (rateLimit === null || typeof rateLimit !== 'object') {
      throw new ConfigError(`${where}: rateLimit: expected { perSecond, burst? }, got ${shown(rateLimit)}`);
    }
    const parts = fieldsOf(`${where}: rateLimit`, rateLimit, RATE_LIMIT_NAMES);
    options.rateLimit = rateLimitOf(`${where}: rateLimit`, parts.get('perSecond'), parts.get('burst'));
  }
  const perKey = fields.get('concurrencyPerKey');
  if (perKey !== undefined) {
    if (
      typeof perKey !== 'number' ||
      !Number.isInteger(perKey) ||
      perKey < 1 ||
      perKey > CONCURRENCY_PER_KEY_MAX
    )
      throw new ConfigError(
        `${where}: concurrencyPerKey: expected a whole number in 1..${CONCURRENCY_PER_KEY_MAX}, got ${shown(perKey)}`,
      );
    options.concurrencyPerKey = perKey;
  }
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
