/**
 * The producer side of the queue: accepts tasks, reads them back, and applies operator actions.
 * Enqueues from concurrent requests are group-committed (see batcher.ts): a caller's promise
 * resolves only after the transaction holding its task is committed, so a 202 is never sent for
 * a task that is not on disk.
 */
import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import { IDEMPOTENCY_WINDOW_MS_DEFAULT, POLL_MS_DEFAULT } from '../core/config.js';
import { QueueError } from '../core/errors.js';
import { isFinished, type JsonObject, type NewTask, type TaskRecord, type TaskStatus } from '../core/task.js';
import type { InsertedTask, QueueDriver, TaskCounts, ThroughputPoint } from '../drivers/driver.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { Batcher } from './batcher.js';
import { TaskWatcher } from './watcher.js';

export interface EnqueueInput {
  action: string;
  data?: JsonObject;
  maxAttempts?: number;
  priority?: number;
  /** Not before this time (epoch ms). */
  runAt?: number;
  uniqueKey?: string;
  /** How long `uniqueKey` deduplicates; defaults to the queue's window. */
  uniqueForMs?: number;
}

export interface EnqueueResult {
  task: TaskRecord;
  /** False when an idempotency key matched an existing task. */
  inserted: boolean;
}

export interface ListInput {
  status?: TaskStatus;
  action?: string;
  limit: number;
  cursor?: string;
}

export interface TaskPage {
  tasks: TaskRecord[];
  nextCursor: string | null;
}

export interface QueueOptions {
  driver: QueueDriver;
  /** How often a waiting request re-reads its task when change events may not reach this process. */
  pollMs?: number;
  registry: HandlerRegistry;
  defaultMaxAttempts: number;
  /** How long an idempotency key deduplicates. */
  uniqueWindowMs?: number;
  /** Most tasks in one group commit. */
  maxInsertBatch?: number;
}

export const UNIQUE_WINDOW_MS_DEFAULT = IDEMPOTENCY_WINDOW_MS_DEFAULT;

/** A repeated idempotency key must come with the same request; otherwise it is a conflict. */
function checkReplay(requested: NewTask, result: InsertedTask): EnqueueResult {
  if (result.inserted) return result;
  const existing = result.task;
  const same =
    existing.action === requested.action &&
    existing.priority === requested.priority &&
    existing.maxAttempts === requested.maxAttempts &&
    isDeepStrictEqual(existing.data, requested.data);
  if (!same) {
    throw new QueueError(
      'TQ_ERR_CONFLICT',
      `idempotency key "${requested.uniqueKey}" was used for a different request (task ${existing.id})`,
    );
  }
  return result;
}

export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString();
  const match = /^s(\d{1,16})$/.exec(text);
  if (!match)
    throw new QueueError('TQ_ERR_VALIDATION', 'querystring/cursor is not a cursor this service returned');
  return Number(match[1]);
}

/** Emitted after the change is committed; metrics count them. */
export interface TaskQueueEvents {
  /** Newly stored tasks (idempotent replays are not included). */
  enqueued: [tasks: TaskRecord[]];
  /** A failed or cancelled task was put back by an operator. */
  retried: [task: TaskRecord];
}

export class TaskQueue extends EventEmitter<TaskQueueEvents> {
  readonly driver: QueueDriver;
  private readonly registry: HandlerRegistry;
  private readonly inserts: Batcher<NewTask, InsertedTask>;
  readonly watcher: TaskWatcher;

  constructor(private readonly options: QueueOptions) {
    super();
    this.driver = options.driver;
    this.registry = options.registry;
    // With cross-process announcements a lost one is the only reason to re-check: do it rarely.
    const fallbackMs = this.driver.capabilities.crossProcessNotify
      ? 5000
      : (options.pollMs ?? POLL_MS_DEFAULT);
    this.watcher = new TaskWatcher(this.driver, fallbackMs);
    this.inserts = new Batcher((tasks) => this.driver.insertTasks({ tasks, now: Date.now() }), {
      maxBatch: options.maxInsertBatch ?? 500,
      delayMs: 0,
      // Several batches in flight: while one waits for its sync (SQLite) or its round trip
      // (PostgreSQL), the next is written, so the event loop never idles behind a disk flush.
      maxInFlight: 4,
    });
  }

  /** Checks an input and turns it into a row; throws QueueError for what the schema cannot see. */
  prepare(input: EnqueueInput, now = Date.now()): NewTask {
    const handler = this.registry.resolve(input.action);
    if (!handler) {
      throw new QueueError(
        'TQ_ERR_UNKNOWN_ACTION',
        `unknown action "${input.action}"; known actions: ${this.registry.actions().join(', ')}`,
      );
    }
    const uniqueKey = input.uniqueKey ?? null;
    return {
      action: input.action,
      data: input.data ?? {},
      priority: input.priority ?? 0,
      runAt: Math.max(now, input.runAt ?? now),
      maxAttempts: input.maxAttempts ?? handler.maxAttempts ?? this.options.defaultMaxAttempts,
      uniqueKey,
      uniqueUntil:
        uniqueKey === null
          ? null
          : now + (input.uniqueForMs ?? this.options.uniqueWindowMs ?? UNIQUE_WINDOW_MS_DEFAULT),
      createdAt: now,
    };
  }

  /** Resolves once the task is committed. */
  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    const task = this.prepare(input);
    const result = checkReplay(task, await this.inserts.add(task));
    if (result.inserted) this.emit('enqueued', [result.task]);
    return result;
  }

  /** All tasks in one transaction: all are stored or none. */
  async enqueueMany(inputs: EnqueueInput[]): Promise<EnqueueResult[]> {
    const now = Date.now();
    const tasks = inputs.map((input) => this.prepare(input, now));
    const results = await this.driver.insertTasks({ tasks, now });
    const checked = results.map((result, i) => checkReplay(tasks[i] as NewTask, result));
    const inserted = checked.filter((r) => r.inserted).map((r) => r.task);
    if (inserted.length > 0) this.emit('enqueued', inserted);
    return checked;
  }

  async get(id: string): Promise<TaskRecord | null> {
    return this.driver.getTask({ id });
  }

  /**
   * The task once it is finished, or as it is when `timeoutMs` runs out (or `signal` aborts).
   * Woken by the task's own change, not by polling.
   */
  async waitForFinish(id: string, timeoutMs: number, signal?: AbortSignal): Promise<TaskRecord | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const task = await this.driver.getTask({ id });
      const left = deadline - Date.now();
      if (!task || isFinished(task.status) || left <= 0 || signal?.aborted || this.watcher.closed)
        return task;
      await this.watcher.nextChange(id, left, signal);
    }
  }

  async list(input: ListInput): Promise<TaskPage> {
    const beforeSeq = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    // One extra row tells whether another page exists without a count query.
    const rows = await this.driver.listTasks({ ...input, beforeSeq, limit: input.limit + 1 });
    const tasks = rows.slice(0, input.limit);
    const last = tasks[tasks.length - 1];
    return { tasks, nextCursor: rows.length > input.limit && last ? encodeCursor(last.seq) : null };
  }

  async cancel(id: string): Promise<TaskRecord> {
    const { outcome, task } = await this.driver.cancelTask({ id, now: Date.now() });
    if (outcome === 'not_found' || !task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${id} not found`);
    if (outcome === 'already_finished') {
      throw new QueueError('TQ_ERR_CONFLICT', `task ${id} is ${task.status} and cannot be cancelled`);
    }
    return task;
  }

  async retry(id: string): Promise<TaskRecord> {
    const { outcome, task } = await this.driver.retryTask({ id, now: Date.now() });
    if (outcome === 'not_found' || !task) throw new QueueError('TQ_ERR_NOT_FOUND', `task ${id} not found`);
    if (outcome === 'not_retryable') {
      throw new QueueError(
        'TQ_ERR_CONFLICT',
        `task ${id} is ${task.status}; only failed or cancelled tasks can be retried`,
      );
    }
    this.emit('retried', task);
    return task;
  }

  async counts(): Promise<TaskCounts> {
    return this.driver.countTasks();
  }

  async throughput(sinceMs: number): Promise<ThroughputPoint[]> {
    return this.driver.throughput({ since: sinceMs });
  }

  /** Waits for group commits still in flight and wakes every waiter (shutdown). */
  async close(): Promise<void> {
    await this.inserts.drain();
    this.watcher.close();
  }
}
