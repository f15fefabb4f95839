/**
 * PostgreSQL driver (node-postgres, one Pool per process). Same semantics as the SQLite driver,
 * proven by test/contract/driver-contract.ts; the differences are in how, not what:
 *
 * - Claims use FOR UPDATE SKIP LOCKED, so many processes claim at once without blocking or
 *   double-claiming. Batches (inserts, completions, failures, releases) are one statement each.
 * - Events: every change that emits an event also issues pg_notify in the same transaction, so
 *   other processes hear it only once it is committed. This process emits its own events locally
 *   after COMMIT and ignores its own notifications (each payload names its sender).
 * - Tables live in `schema` (default `taskq`), selected through the connections' search_path, so
 *   tests and tenants can use a schema each; the NOTIFY channel includes the schema too.
 * - Times are epoch ms in bigint columns; int8 values are parsed to numbers (ms fit exactly).
 * - Losing the database never hangs a caller: connecting gives up after `connectionTimeoutMs`,
 *   `ping` after 2 s, and connection errors surface as QueueError TQ_ERR_UNAVAILABLE (HTTP 503).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { QueueError } from '../../core/errors.js';
import type { JsonValue, TaskRecord, TaskStatus } from '../../core/task.js';
import { compareClaimOrder } from '../../core/task.js';
import { toTaskRecord, type RowDecoders, type TaskRow as GenericTaskRow } from '../task-row.js';
import { countsFromRows, type CounterRow } from '../counter-rows.js';
import type {
  CancelOutcome,
  ClaimTasksParams,
  CompleteTasksParams,
  DriverCapabilities,
  DriverEventName,
  DriverEvents,
  ExtendLeasesParams,
  FailTasksParams,
  FinishedBefore,
  HeldTask,
  InsertedTask,
  InsertTasksParams,
  LeaseRef,
  ListTasksParams,
  MigrateResult,
  QueueDriver,
  ReleaseTasksParams,
  RescueResult,
  RetryOutcome,
  TaskCounts,
  ThroughputPoint,
  Unsubscribe,
} from '../driver.js';
import { PgListener } from './listener.js';
import {
  createSchemaSql,
  CURRENT_VERSION,
  IS_APPLIED,
  MIGRATION_LOCK,
  MIGRATIONS,
  MIGRATIONS_TABLE,
  RECORD_APPLIED,
} from './migrations.js';
import { listTasksSql, SQL, type QueryName } from './queries.js';

export interface PostgresDriverOptions {
  connectionString: string;
  poolSize: number;
  /** Where the tables live; a plain lower-case identifier. Also `?schema=` in the URL. @defaultValue 'taskq' */
  schema?: string;
  /** Give up acquiring a connection after this long. @defaultValue 3000 */
  connectionTimeoutMs?: number;
}

export const SCHEMA_DEFAULT = 'taskq';
export const CONNECTION_TIMEOUT_MS_DEFAULT = 3000;
const PING_TIMEOUT_MS = 2000;
const DRIVER_EVENTS: readonly DriverEventName[] = ['tasksQueued', 'tasksChanged', 'cancelRequested'];
/** Ids per NOTIFY payload: keeps each payload well under PostgreSQL's 8000-byte limit. */
const IDS_PER_NOTIFICATION = 100;

type TaskRow = GenericTaskRow<JsonValue, boolean>;
/** node-postgres parses json itself, and booleans are booleans. */
const DECODE: RowDecoders<JsonValue, boolean> = { json: (value) => value, flag: (b) => b };
const toRecord = (row: TaskRow): TaskRecord => toTaskRecord(row, DECODE);

/** int8 (counts, ms times, seq) as numbers; every other type as node-postgres parses it. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  '53300', // too_many_connections
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

/** True when the error means the database cannot be reached, rather than a bad statement. */
function isConnectionError(err: unknown): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (CONNECTION_ERROR_CODES.has(code) || code.startsWith('08'))) return true;
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|connection error|Client was closed|pool after calling end/i.test(
      message,
    )
  );
}

function unavailable(err: unknown): unknown {
  if (err instanceof QueueError || !isConnectionError(err)) return err;
  return new QueueError('TQ_ERR_UNAVAILABLE', `PostgreSQL is unavailable: ${(err as Error).message}`, {
    cause: err,
  });
}

type PendingEvent = { [E in DriverEventName]: { event: E; payload: DriverEvents[E] } }[DriverEventName];

/** What a transaction decided, plus the events to announce once it commits. */
interface TxResult<T> {
  value: T;
  events: PendingEvent[];
}

/** A query runner bound to one connection (inside a transaction) or to the pool. */
type Run = <R extends pg.QueryResultRow>(name: QueryName, params?: unknown[]) => Promise<pg.QueryResult<R>>;

export class PostgresDriver implements QueueDriver {
  readonly capabilities: DriverCapabilities = { crossProcessNotify: true, skipLocked: true };
  readonly description: string;
  private readonly pool: pg.Pool;
  private readonly schema: string;
  private readonly channel: string;
  private readonly listener: PgListener;
  private listening = false;
  /** Names this driver in its notifications, so it can ignore its own. */
  private readonly sender = randomBytes(8).toString('hex');
  private readonly events = new EventEmitter();
  private closed = false;

  constructor(options: PostgresDriverOptions) {
    const { connectionString, schemaInUrl } = takeSchemaParam(options.connectionString);
    const schema = options.schema ?? schemaInUrl ?? SCHEMA_DEFAULT;
    // 57 characters at most: the NOTIFY channel `taskq:<schema>` must stay within 63.
    if (!/^[a-z_][a-z0-9_]{0,56}$/.test(schema)) {
      throw new QueueError(
        'TQ_ERR_VALIDATION',
        `PostgreSQL schema "${schema}" must be a lower-case identifier (a-z, 0-9, _; at most 57)`,
      );
    }
    this.schema = schema;
    this.channel = `taskq:${schema}`;
    this.description = `postgres ${describeUrl(connectionString)} (schema ${schema})`;
    const clientConfig: pg.ClientConfig = {
      connectionString,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS_DEFAULT,
      keepAlive: true,
      options: `-c search_path=${schema}`,
      types: TYPES,
    };
    this.pool = new pg.Pool({ ...clientConfig, max: options.poolSize });
    // An idle connection that dies emits here; without a listener it would crash the process.
    // The next query gets a fresh connection (or a TQ_ERR_UNAVAILABLE error).
    this.pool.on('error', () => {});
    this.listener = new PgListener({
      clientConfig,
      channel: this.channel,
      onMessage: (payload) => this.onNotification(payload),
      onReconnect: () => this.events.emit('tasksQueued', { count: 0 }),
    });
    this.events.setMaxListeners(0);
  }

  on<E extends DriverEventName>(event: E, listener: (payload: DriverEvents[E]) => void): Unsubscribe {
    // Listen only once someone subscribes: a `migrate` run needs no extra connection.
    if (!this.listening && !this.closed) {
      this.listening = true;
      this.listener.start();
    }
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  private onNotification(text: string): void {
    let message: { sender?: string; event?: DriverEventName; payload?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return; // not ours
    }
    const { sender, event, payload } = message;
    if (sender === this.sender || event === undefined || !DRIVER_EVENTS.includes(event)) return;
    this.events.emit(event, payload);
  }

  /** Runs one named statement on any pooled connection. */
  private run: Run = async (name, params) => {
    try {
      return await this.pool.query(SQL[name], params);
    } catch (err) {
      throw unavailable(err);
    }
  };

  /**
   * Runs `fn` in a transaction; its events are NOTIFYed inside the transaction (delivered on
   * commit) and emitted locally after COMMIT.
   */
  private async transaction<T>(fn: (run: Run, client: pg.PoolClient) => Promise<TxResult<T>>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const run: Run = (name, params) => client.query(SQL[name], params);
      const { value, events } = await fn(run, client);
      const payloads = events.flatMap((e) => this.notificationsOf(e));
      if (payloads.length > 0) await run('notify', [this.channel, payloads]);
      await client.query('COMMIT');
      for (const e of events) this.events.emit(e.event, e.payload);
      return value;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
      throw unavailable(err);
    } finally {
      // A connection that failed mid-transaction is discarded rather than reused.
      client.release(broken);
    }
  }

  private notificationsOf(e: PendingEvent): string[] {
    const message = (payload: unknown) => JSON.stringify({ sender: this.sender, event: e.event, payload });
    if (e.event === 'tasksQueued') return [message(e.payload)];
    const out: string[] = [];
    for (let i = 0; i < e.payload.ids.length; i += IDS_PER_NOTIFICATION) {
      out.push(message({ ids: e.payload.ids.slice(i, i + IDS_PER_NOTIFICATION) }));
    }
    return out;
  }

  async migrate(params: { onApplied?: (name: string) => void } = {}): Promise<MigrateResult> {
    const result = await this.transaction(async (_run, client) => {
      await client.query(MIGRATION_LOCK, [this.schema]);
      await client.query(createSchemaSql(this.schema));
      await client.query(MIGRATIONS_TABLE);
      const applied: string[] = [];
      for (const migration of MIGRATIONS) {
        const done = await client.query(IS_APPLIED, [migration.version]);
        if (done.rowCount) continue;
        await client.query(RECORD_APPLIED, [migration.version, migration.name, Date.now()]);
        await client.query(migration.sql);
        applied.push(migration.name);
      }
      const current = (await client.query<{ v: number | null }>(CURRENT_VERSION)).rows[0]?.v ?? 0;
      return { value: { applied, current }, events: [] };
    });
    // Reported once committed, so a name printed is a migration that is really in place.
    for (const name of result.applied) params.onApplied?.(name);
    return result;
  }

  async ping(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new QueueError('TQ_ERR_UNAVAILABLE', `PostgreSQL did not answer within ${PING_TIMEOUT_MS} ms`),
          ),
        PING_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([this.run('ping'), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async insertTasks({ tasks, now }: InsertTasksParams): Promise<InsertedTask[]> {
    if (tasks.length === 0) return [];
    // Random ids. Only the SQLite driver derives ids from seq (task-ids.ts), for its insert cost;
    // on PostgreSQL that was not measured to matter next to a batch's round trip and commit.
    const ids = tasks.map(() => randomUUID());
    return this.transaction(async (run) => {
      const keys = [...new Set(tasks.flatMap((t) => (t.uniqueKey === null ? [] : [t.uniqueKey])))];
      if (keys.length > 0) await run('expireUniqueKey', [keys, now]);
      const inserted = await run<TaskRow>('insertTasks', [
        ids,
        tasks.map((t) => t.action),
        tasks.map((t) => JSON.stringify(t.data)),
        tasks.map((t) => t.priority),
        tasks.map((t) => t.runAt),
        tasks.map((t) => t.maxAttempts),
        tasks.map((t) => t.uniqueKey),
        tasks.map((t) => t.uniqueUntil),
        tasks.map((t) => t.createdAt),
      ]);
      const byId = new Map(inserted.rows.map((row) => [row.id, toRecord(row)]));
      // Tasks whose key was taken (by an older task or one earlier in this batch) get that task.
      const byKey = new Map<string, TaskRecord>();
      if (inserted.rows.length < tasks.length) {
        const holders = await run<TaskRow>('findByUniqueKey', [keys]);
        for (const row of holders.rows) byKey.set(row.unique_key as string, toRecord(row));
      }
      const value = tasks.map((t, i): InsertedTask => {
        const own = byId.get(ids[i] as string);
        if (own) return { task: own, inserted: true };
        const holder = t.uniqueKey === null ? undefined : byKey.get(t.uniqueKey);
        if (!holder)
          throw new QueueError('TQ_ERR_INTERNAL', `task ${ids[i]} was neither inserted nor deduplicated`);
        return { task: holder, inserted: false };
      });
      const count = inserted.rows.length;
      return { value, events: count > 0 ? [{ event: 'tasksQueued', payload: { count } }] : [] };
    });
  }

  async getTask({ id }: { id: string }): Promise<TaskRecord | null> {
    const { rows } = await this.run<TaskRow>('getTask', [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async listTasks(params: ListTasksParams): Promise<TaskRecord[]> {
    const filters = {
      status: !!params.status,
      action: !!params.action,
      beforeSeq: params.beforeSeq !== undefined,
    };
    const values = [
      ...(filters.status ? [params.status] : []),
      ...(filters.action ? [params.action] : []),
      ...(filters.beforeSeq ? [params.beforeSeq] : []),
      params.limit,
    ];
    try {
      const { rows } = await this.pool.query<TaskRow>(listTasksSql(filters), values);
      return rows.map(toRecord);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async claimTasks({ owner, limit, now, leaseMs, excludeActions }: ClaimTasksParams): Promise<TaskRecord[]> {
    if (limit <= 0) return [];
    const params = [owner, now + leaseMs, now, limit];
    const { rows } = excludeActions?.length
      ? await this.run<TaskRow>('claimTasksExceptActions', [...params, excludeActions])
      : await this.run<TaskRow>('claimTasks', params);
    return rows.map(toRecord).sort(compareClaimOrder);
  }

  async completeTasks({ completions, now }: CompleteTasksParams): Promise<void> {
    if (completions.length === 0) return;
    await this.transaction(async (run) => {
      const { rows } = await run<{ id: string }>('completeTasks', [
        now,
        completions.map((c) => c.id),
        completions.map((c) => c.owner),
        completions.map((c) => c.attempt),
        completions.map((c) => JSON.stringify(c.result ?? null)),
      ]);
      const ids = rows.map((r) => r.id);
      return {
        value: undefined,
        events: ids.length > 0 ? [{ event: 'tasksChanged', payload: { ids } }] : [],
      };
    });
  }

  async failTasks({ failures, now }: FailTasksParams): Promise<void> {
    if (failures.length === 0) return;
    await this.transaction(async (run) => {
      const { rows } = await run<{ id: string; status: TaskStatus }>('failTasks', [
        now,
        failures.map((f) => f.id),
        failures.map((f) => f.owner),
        failures.map((f) => f.attempt),
        failures.map((f): TaskStatus => (f.outcome === 'retry' ? 'queued' : f.outcome)),
        failures.map((f) => textValue(f.error)),
        failures.map((f) => f.retryAt ?? null),
      ]);
      return { value: undefined, events: changeEvents(rows) };
    });
  }

  async extendLeases({ owner, now, leaseMs }: ExtendLeasesParams): Promise<HeldTask[]> {
    const { rows } = await this.run<{ id: string; cancel_requested: boolean }>('extendLeases', [
      owner,
      now + leaseMs,
    ]);
    return rows.map((r) => ({ id: r.id, cancelRequested: r.cancel_requested }));
  }

  async releaseTasks({ tasks }: ReleaseTasksParams): Promise<void> {
    if (tasks.length === 0) return;
    await this.transaction(async (run) => {
      const { rows } = await run<{ id: string }>('releaseTasks', [
        tasks.map((t) => t.id),
        tasks.map((t) => t.owner),
        tasks.map((t) => t.attempt),
      ]);
      const count = rows.length;
      return { value: undefined, events: count > 0 ? [{ event: 'tasksQueued', payload: { count } }] : [] };
    });
  }

  async rescueExpiredLeases({ now }: { now: number }): Promise<RescueResult> {
    return this.transaction(async (run) => {
      const { rows } = await run<{ id: string; status: TaskStatus }>('rescueExpiredLeases', [now]);
      const value = {
        requeued: rows.filter((r) => r.status === 'queued').map((r) => r.id),
        failed: rows.filter((r) => r.status !== 'queued').map((r) => r.id),
      };
      return { value, events: changeEvents(rows) };
    });
  }

  async cancelTask({
    id,
    now,
  }: {
    id: string;
    now: number;
  }): Promise<{ outcome: CancelOutcome; task: TaskRecord | null }> {
    return this.transaction<{ outcome: CancelOutcome; task: TaskRecord | null }>(async (run) => {
      const cancelled = (await run<TaskRow>('cancelQueued', [id, now])).rows[0];
      if (cancelled) {
        const value = { outcome: 'cancelled' as const, task: toRecord(cancelled) };
        return { value, events: [{ event: 'tasksChanged', payload: { ids: [id] } }] };
      }
      const requested = (await run<TaskRow>('requestCancel', [id])).rows[0];
      if (requested) {
        const value = { outcome: 'cancel_requested' as const, task: toRecord(requested) };
        return { value, events: [{ event: 'cancelRequested', payload: { ids: [id] } }] };
      }
      const row = (await run<TaskRow>('getTask', [id])).rows[0];
      const value = row
        ? { outcome: 'already_finished' as const, task: toRecord(row) }
        : { outcome: 'not_found' as const, task: null };
      return { value, events: [] };
    });
  }

  async retryTask({
    id,
    now,
  }: {
    id: string;
    now: number;
  }): Promise<{ outcome: RetryOutcome; task: TaskRecord | null }> {
    return this.transaction<{ outcome: RetryOutcome; task: TaskRecord | null }>(async (run) => {
      const requeued = (await run<TaskRow>('retryTask', [id, now])).rows[0];
      if (requeued) {
        const value = { outcome: 'requeued' as const, task: toRecord(requeued) };
        const events: PendingEvent[] = [
          { event: 'tasksQueued', payload: { count: 1 } },
          { event: 'tasksChanged', payload: { ids: [id] } },
        ];
        return { value, events };
      }
      const row = (await run<TaskRow>('getTask', [id])).rows[0];
      const value = row
        ? { outcome: 'not_retryable' as const, task: toRecord(row) }
        : { outcome: 'not_found' as const, task: null };
      return { value, events: [] };
    });
  }

  async setProgress(params: LeaseRef & { progress: number; message: string | null }): Promise<void> {
    await this.transaction(async (run) => {
      const { rowCount } = await run('setProgress', [
        params.id,
        params.owner,
        params.attempt,
        params.progress,
        params.message === null ? null : textValue(params.message),
      ]);
      return {
        value: undefined,
        events: rowCount ? [{ event: 'tasksChanged', payload: { ids: [params.id] } }] : [],
      };
    });
  }

  /** From the trigger-kept counters (migration 0003, docs/stats.md): exact, and as fast at any size. */
  async countTasks(): Promise<TaskCounts> {
    const { rows } = await this.run<(CounterRow | { [K in keyof CounterRow]: null }) & { t: number | null }>(
      'countsFromCounters',
    );
    const counted = rows.filter((r): r is CounterRow & { t: number | null } => r.action !== null);
    return countsFromRows(counted, rows[0]?.t ?? null);
  }

  /** From the per-minute rollup (migration 0003): whole minutes, from the one holding `since`. */
  async throughput({ since }: { since: number }): Promise<ThroughputPoint[]> {
    return (await this.run<ThroughputPoint & pg.QueryResultRow>('throughputFromRollup', [since])).rows;
  }

  async countPrunableTasks({ finishedBefore }: { finishedBefore: FinishedBefore }): Promise<number> {
    const { completed, failed, cancelled } = finishedBefore;
    const result = await this.run('countPrunableTasks', [completed, failed, cancelled]);
    return Number((result.rows[0] as { n: string | number }).n);
  }

  async pruneTasks({
    finishedBefore,
    limit,
  }: {
    finishedBefore: FinishedBefore;
    limit: number;
  }): Promise<number> {
    const { completed, failed, cancelled } = finishedBefore;
    return (await this.run('pruneTasks', [completed, failed, cancelled, limit])).rowCount ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.events.removeAllListeners();
    await this.listener.close();
    await this.pool.end();
  }
}

/** Events of rows that left `running`: re-queued ones may be claimed, and all of them changed. */
function changeEvents(rows: { id: string; status: TaskStatus }[]): PendingEvent[] {
  const events: PendingEvent[] = [];
  const count = rows.filter((r) => r.status === 'queued').length;
  if (count > 0) events.push({ event: 'tasksQueued', payload: { count } });
  if (rows.length > 0) events.push({ event: 'tasksChanged', payload: { ids: rows.map((r) => r.id) } });
  return events;
}

/**
 * PostgreSQL text cannot hold U+0000 (SQLite can). Error and progress messages come from handler
 * code, so a NUL there becomes U+FFFD rather than failing the whole batch on every retry.
 */
function textValue(text: string): string {
  return text.replaceAll('\u0000', '\uFFFD');
}

/** `?schema=name` in the URL chooses the schema (TASKQ_DB has no separate setting); pg must not see it. */
function takeSchemaParam(url: string): { connectionString: string; schemaInUrl: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { connectionString: url, schemaInUrl: undefined };
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  if (schema === undefined) return { connectionString: url, schemaInUrl: undefined };
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schemaInUrl: schema };
}

/** host/database without credentials, for logs. */
function describeUrl(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.host}${url.pathname}`;
  } catch {
    return 'database';
  }
}
