/**
 * PostgreSQL driver (node-postgres, one Pool per process). Same semantics as the SQLite driver,
 * proven by test/contract/driver-contract.ts; the differences are in how, not what:
 *
 * - Claims use FOR UPDATE SKIP LOCKED, so many processes claim at once without blocking or
 *   double-claiming. Batches (inserts, completions, failures, releases) are one statement each.
 * - Hot writes are single statements (no BEGIN/COMMIT round trips) and named, so each connection
 *   plans them once. Rows are matched by `seq`, the primary key, rather than the text id.
 * - Two pools. `pool` commits durably (synchronous_commit on): inserts (a 202 is on disk),
 *   results (a completed task stays completed), operator actions. `relaxed` commits without
 *   waiting for the WAL flush, for writes whose loss in a database crash is the same as an event
 *   the queue already survives: a lost claim or a lost lease renewal is a lease expiry (the task
 *   runs again: at-least-once), a lost release is a lease expiry, a lost progress write shows
 *   older progress. Nothing a client was promised rides on them, and any later durable commit
 *   (an ack, an insert) flushes the WAL up to and including them. docs/architecture.md has the
 *   full argument; test/drivers/postgres-driver.test.ts checks the recovery paths.
 * - Events: announced to other processes after the change is committed (notifier.ts explains why
 *   not inside the transaction), one LISTEN channel per event, so a process hears only what it
 *   subscribed to. This process emits its own events locally after COMMIT and ignores its own
 *   notifications (each payload names its sender).
 * - Tables live in `schema` (default `taskq`), selected through the connections' search_path, so
 *   tests and tenants can use a schema each; the NOTIFY channel includes the schema too.
 * - Times are epoch ms in bigint columns; int8 values are parsed to numbers (ms fit exactly).
 * - Losing the database never hangs a caller: connecting gives up after `connectionTimeoutMs`,
 *   `ping` after 2 s, and connection errors surface as QueueError TQ_ERR_UNAVAILABLE (HTTP 503).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { QueueError } from '../../core/errors.js';
import type { ActionPause } from '../../core/actions.js';
import type { LimitedClaim } from '../../core/flow.js';
import type { JsonValue, TaskRecord, TaskStatus } from '../../core/task.js';
import {
  ATTEMPT_HISTORY_DEFAULT,
  compareClaimOrder,
  hasGraph,
  jsonTextOf,
  newTaskRecord,
  TASK_STATUSES,
  type NewTask,
} from '../../core/task.js';
import {
  cascadeStep,
  cycleError,
  dependencySeqs,
  graphCount,
  graphStart,
  toGraphNode,
  reblockPlan,
  type CascadeRow,
  type DependencyRow,
  type GraphNodeRow,
} from '../shared/graph.js';
import {
  claimedRecord,
  toTaskRecord,
  type ClaimedRow as GenericClaimedRow,
  type RowDecoders,
  type TaskRow as GenericTaskRow,
} from '../shared/task-row.js';
import {
  actionMinuteOf,
  countsFromRows,
  pauseOf,
  scheduleStateOf,
  type ActionMinuteRow,
  type CounterRow,
  type PauseRow,
  type ScheduleRow,
} from '../shared/counts.js';
import { AUDIT_SEQ_TOP, auditListingOf, auditRecordOf, type AuditRow } from '../shared/audit.js';
import { toNodeRecord, type NodeRow } from '../shared/node-row.js';
import { FlowClaim, KeyCursors, type Candidate } from '../shared/flow-claim.js';
import type {
  ActionStatsRead,
  BulkOp as BulkOperation,
  CancelOutcome,
  ClaimTasksParams,
  CreateOperationParams,
  FoundTasks,
  MatchCount,
  OperationRecord,
  StepOperationParams,
  CompleteTasksParams,
  DriverCapabilities,
  DriverEventName,
  DriverEvents,
  ExtendLeasesParams,
  FailTasksParams,
  FinishedBefore,
  GetTaskGraphParams,
  HeartbeatNodeParams,
  HeldTask,
  InsertedTask,
  InsertTasksParams,
  LeaseRef,
  ListTasksParams,
  MigrateResult,
  NodeRecord,
  QueueDriver,
  ReleaseTasksParams,
  RescueParams,
  RescueResult,
  RetryOutcome,
  ScheduleState,
  NewAuditEntry,
  ListAuditParams,
  AuditRecord,
  TaskCounts,
  TaskGraph,
  ThroughputPoint,
  Unsubscribe,
  WaitOutcome,
} from '../driver.js';
import { TaskIdCodec } from '../task-ids.js';
import { DriverEventBus, eventsOf, statusAfterFailure, type PendingEvent } from '../shared/events.js';
import { runMigrations } from '../shared/migrator.js';
import { PgListener } from './listener.js';
import { LimitedWarn, type DriverLogger } from './warn-limited.js';
import { SeqReserve } from './seq-reserve.js';
import { CLAIM_FLOOR_DEFAULTS, ClaimFloor, type ClaimFloorOptions, type ClaimStart } from './claim-floor.js';
import { parseNotification, PgNotifier, type Notification } from './notifier.js';
import {
  createSchemaSql,
  CURRENT_VERSION,
  IS_APPLIED,
  MIGRATION_LOCK,
  MIGRATIONS,
  MIGRATIONS_TABLE,
  RECORD_APPLIED,
} from './migrations.js';
import {
  claimStatement,
  LIST_DIALECT,
  RELAXED_SESSION_OPTIONS,
  sessionOptions,
  SQL,
  type QueryName,
} from './queries.js';
import { listQuery, renderList, type ListQuery, type ListShape } from '../shared/list-filter.js';
import {
  afterStep,
  bulkRetried,
  stepQuery,
  stepStatus,
  toOperationRecord,
  type BulkChange,
  type OperationRow,
} from '../shared/bulk-step.js';

export interface PostgresDriverOptions {
  connectionString: string;
  poolSize: number;
  /** Where the tables live; a plain lower-case identifier. Also `?schema=` in the URL. @defaultValue 'taskq' */
  schema?: string;
  /** Give up acquiring a connection after this long. @defaultValue 3000 */
  connectionTimeoutMs?: number;
  /** Where lost connections are reported (rate-limited warnings); silent without one. */
  logger?: DriverLogger;
  /** Attempts each task's history keeps. @defaultValue ATTEMPT_HISTORY_DEFAULT (20) */
  attemptHistoryMax?: number;
  /** The claim floor's full-scan period, and its clock (tests). @defaultValue CLAIM_FLOOR_DEFAULTS */
  claimFloor?: ClaimFloorOptions;
}

export const SCHEMA_DEFAULT = 'taskq';
export const CONNECTION_TIMEOUT_MS_DEFAULT = 3000;
const PING_TIMEOUT_MS = 2000;
/** Seqs fetched ahead for later inserts, and how long they stay usable (seq-reserve.ts). */
const SPARE_SEQS = 256;
const SPARE_SEQ_MAX_AGE_MS = 1000;
/** Connections of the relaxed pool: claims, heartbeats, releases, progress and announcements. */
const RELAXED_POOL_SIZE = 3;
/**
 * The LISTEN channel of each event is `<prefix>:<schema>`; channel names stop at 63 bytes, which
 * is why the prefixes are this short and the schema at most 57 characters.
 */
const CHANNEL_PREFIX: Record<DriverEventName, string> = {
  tasksQueued: 'tqq',
  tasksChanged: 'tqc',
  cancelRequested: 'tqx',
};

type TaskRow = GenericTaskRow<JsonValue, boolean>;
/** node-postgres parses json itself, and booleans are booleans. */
const DECODE: RowDecoders<JsonValue, boolean> = { json: (value) => value, flag: (b) => b };
const toRecord = (row: TaskRow): TaskRecord => toTaskRecord(row, DECODE);
type ClaimedRow = GenericClaimedRow<JsonValue, boolean>;
/** A row of the statements that finish tasks: the task itself, or a dependent it settled. */
type DoneRow = { seq: number; id: string; status: TaskStatus; dependent: boolean };

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

/** What a transaction decided, plus the events to announce once it commits. */
interface TxResult<T> {
  value: T;
  events: PendingEvent[];
}

/** A query runner bound to one connection (inside a transaction) or to a pool. */
/** `items` sorted by seq (a copy), the order every statement that locks tasks takes them in. */
const bySeq = <T extends { seq: number }>(items: readonly T[]): T[] =>
  [...items].sort((a, b) => a.seq - b.seq);

type Run = <R extends pg.QueryResultRow>(name: QueryName, params?: unknown[]) => Promise<pg.QueryResult<R>>;

/** A named statement: prepared on each connection at first use, then only bound and executed. */
const statement = (name: QueryName, values?: unknown[]): pg.QueryConfig => ({
  name,
  text: SQL[name],
  values,
});

export class PostgresDriver implements QueueDriver {
  readonly capabilities: DriverCapabilities = {
    crossProcessNotify: true,
    skipLocked: true,
    // tasks_status_action_seq (migration 0014) holds every status.
    actionIndexedStatuses: TASK_STATUSES,
  };
  readonly description: string;
  /** Durable commits: inserts, results, operator actions. */
  private readonly pool: pg.Pool;
  /** Commits that need not wait for the WAL flush (see the top comment). */
  private readonly relaxed: pg.Pool;
  private readonly schema: string;
  private readonly channels: Record<DriverEventName, string>;
  private readonly eventOfChannel: Map<string, DriverEventName>;
  private readonly listener: PgListener;
  private readonly notifier: PgNotifier;
  /** Names this driver in its notifications, so it can ignore its own. */
  private readonly sender = randomBytes(8).toString('hex');
  private readonly events = new DriverEventBus();
  private closed = false;
  /** Attempts a task's history keeps (the statements that append to it drop older ones). */
  private readonly historyMax: number;
  private idCodec: Promise<TaskIdCodec> | null = null;
  /** Where each keyed action's next limited claim starts reading keys (shared/flow-claim.ts). */
  private readonly keyCursors = new KeyCursors();
  /** Where plain claims start reading (claim-floor.ts). */
  private readonly claimFloor: ClaimFloor;
  private readonly seqs = new SeqReserve({
    allocate: async (count) =>
      (await this.run<{ seq: number }>('allocateSeqs', [count])).rows.map((r) => r.seq),
    spare: SPARE_SEQS,
    maxAgeMs: SPARE_SEQ_MAX_AGE_MS,
  });

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
    this.historyMax = options.attemptHistoryMax ?? ATTEMPT_HISTORY_DEFAULT;
    this.claimFloor = new ClaimFloor(options.claimFloor ?? CLAIM_FLOOR_DEFAULTS);
    this.channels = {
      tasksQueued: `${CHANNEL_PREFIX.tasksQueued}:${schema}`,
      tasksChanged: `${CHANNEL_PREFIX.tasksChanged}:${schema}`,
      cancelRequested: `${CHANNEL_PREFIX.cancelRequested}:${schema}`,
    };
    this.eventOfChannel = new Map(
      Object.entries(this.channels).map(([event, channel]) => [channel, event as DriverEventName]),
    );
    this.description = `postgres ${describeUrl(connectionString)} (schema ${schema})`;
    const clientConfig: pg.ClientConfig = {
      connectionString,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? CONNECTION_TIMEOUT_MS_DEFAULT,
      keepAlive: true,
      // Names the process in pg_stat_activity (a URL's own application_name wins).
      application_name: `taskq:${process.pid}`,
      options: sessionOptions(schema),
      types: TYPES,
    };
    this.pool = new pg.Pool({ ...clientConfig, max: options.poolSize });
    this.relaxed = new pg.Pool({
      ...clientConfig,
      max: RELAXED_POOL_SIZE,
      options: `${sessionOptions(schema)} ${RELAXED_SESSION_OPTIONS}`,
    });
    // An idle connection that dies emits here; without a listener it would crash the process.
    // The next query gets a fresh connection (or a TQ_ERR_UNAVAILABLE error). Said once in a
    // while: it is often the first sign that the server went away.
    const warnings = new LimitedWarn(options.logger);
    this.pool.on('error', (err) => warnings.warn(err, 'an idle PostgreSQL connection was lost'));
    this.relaxed.on('error', (err) => warnings.warn(err, 'an idle PostgreSQL connection was lost'));
    this.listener = new PgListener({
      clientConfig,
      onError: (err, msg, fields) => warnings.warn(err, msg, fields),
      onMessage: (channel, payload) => this.onNotification(channel, payload),
      // Notifications sent while disconnected are lost: workers look for work instead, and
      // claims read from the front (anything may have been queued again).
      onReconnect: () => this.heard([{ event: 'tasksQueued', payload: { count: 0, requeued: true } }]),
    });
    this.notifier = new PgNotifier({
      channels: this.channels,
      sender: this.sender,
      send: async (notifications: Notification[]) => {
        try {
          await this.runOn(this.relaxed, 'notify', [
            notifications.map((n) => n.channel),
            notifications.map((n) => n.payload),
          ]);
        } catch (err) {
          // Dropped (other processes' polling covers it, notifier.ts), but not silently.
          warnings.warn(err, 'announcing task changes to other processes failed');
          throw err;
        }
      },
    });
  }

  on<E extends DriverEventName>(event: E, listener: (payload: DriverEvents[E]) => void): Unsubscribe {
    // LISTEN only while someone here subscribes: a `migrate` run needs no extra connection, and a
    // worker node never receives the completions only waiting API requests care about.
    const stopListening = this.closed ? () => undefined : this.listener.subscribe(this.channels[event]);
    const unsubscribe = this.events.on(event, listener);
    return () => {
      unsubscribe();
      stopListening();
    };
  }

  private onNotification(channel: string, payload: string): void {
    const event = this.eventOfChannel.get(channel);
    if (event === undefined) return;
    const parsed = parseNotification(event, payload, this.sender);
    // parseNotification gives the payload shape of `event` (its result type does not say so).
    if (parsed) this.heard([{ event, payload: parsed } as PendingEvent]);
  }

  /** Emits committed changes here and announces them to other processes. */
  private announce(events: PendingEvent[]): void {
    this.heard(events);
    for (const e of events) this.notifier.announce(e.event, e.payload);
  }

  /** Committed changes, made here or heard from another process, for this process's subscribers. */
  private heard(events: PendingEvent[]): void {
    for (const e of events) if (e.event === 'tasksQueued') this.claimFloor.queued(e.payload);
    this.events.emit(events);
  }

  /** Runs one named statement on a connection of `pool` (autocommit: one round trip). */
  private runOn<R extends pg.QueryResultRow>(
    pool: pg.Pool,
    name: QueryName,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.runConfig(pool, statement(name, params));
  }

  /** Runs one statement (named, or not) on a connection of `pool`. */
  private async runConfig<R extends pg.QueryResultRow>(
    pool: pg.Pool,
    config: pg.QueryConfig,
  ): Promise<pg.QueryResult<R>> {
    try {
      return await pool.query<R>(config);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** A named statement on the durable pool. */
  private run: Run = (name, params) => this.runOn(this.pool, name, params);

  /** The id codec under this database's key (written by migrate), loaded once. */
  private ids(): Promise<TaskIdCodec> {
    this.idCodec ??= this.run<{ value: Buffer }>('readIdKey').then(({ rows }) => {
      const key = rows[0]?.value;
      if (!key) throw new QueueError('TQ_ERR_INTERNAL', 'the task id key is missing: run `taskq migrate`');
      return new TaskIdCodec(key);
    });
    // A failed load (database down) is tried again next time.
    this.idCodec.catch(() => (this.idCodec = null));
    return this.idCodec;
  }

  /**
   * The row of the task with public id `id`: by the seqs the id may encode (the primary key),
   * where the stored id must match too; else among the random ids of tasks from before 0004.
   */
  private async findRow(run: Run, id: string): Promise<TaskRow | undefined> {
    const wanted = id.toLowerCase();
    const seqs = (await this.ids()).decode(wanted);
    if (seqs.length > 0) {
      const { rows } = await run<TaskRow>('getTaskBySeq', [seqs]);
      const row = rows.find((r) => r.id === wanted);
      if (row) return row;
    }
    return (await run<TaskRow>('getLegacyTask', [wanted])).rows[0];
  }

  /** Runs `fn` in a transaction on `pool`; its events are emitted and announced after COMMIT. */
  private async transaction<T>(
    fn: (run: Run, client: pg.PoolClient) => Promise<TxResult<T>>,
    pool: pg.Pool = this.pool,
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    let broken: Error | undefined;
    // The pool stops listening for errors on a client it hands out, and a client whose backend is
    // terminated emits 'error' even while its query is failing: without this listener that is an
    // uncaught exception. The failing query rejects as well, and the catch below handles it.
    const onError = (err: Error) => (broken = err);
    client.on('error', onError);
    try {
      await client.query(SQL.begin);
      const run: Run = (name, params) => client.query(statement(name, params));
      const { value, events } = await fn(run, client);
      await client.query(SQL.commit);
      this.announce(events);
      return value;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query(SQL.rollback).catch((rollbackErr: Error) => (broken = rollbackErr));
      throw unavailable(err);
    } finally {
      // A connection that failed mid-transaction is discarded rather than reused.
      client.off('error', onError);
      client.release(broken);
    }
  }

  async migrate(params: { onApplied?: (name: string) => void } = {}): Promise<MigrateResult> {
    try {
      return await this.applyMigrations(params);
    } catch (err) {
      // Usually the first contact with the server: say which database could not be reached or
      // used (node-postgres names a host, or nothing, and "does not exist" names no server).
      const message = `cannot migrate ${this.description}: ${(err as Error).message}`;
      throw err instanceof QueueError
        ? new QueueError(err.code, message, { cause: err })
        : new Error(message, { cause: err });
    }
  }

  private async applyMigrations(params: { onApplied?: (name: string) => void }): Promise<MigrateResult> {
    // All migrations in one transaction under the schema's advisory lock.
    const result = await this.transaction(async (_run, client) => {
      const run = await runMigrations(MIGRATIONS, {
        prepare: async () => {
          await client.query(MIGRATION_LOCK, [this.schema]);
          await client.query(createSchemaSql(this.schema));
          await client.query(MIGRATIONS_TABLE);
        },
        applyOnce: async (migration) => {
          if ((await client.query(IS_APPLIED, [migration.version])).rowCount) return false;
          await client.query(RECORD_APPLIED, [migration.version, migration.name, Date.now()]);
          await client.query(migration.sql);
          return true;
        },
        currentVersion: async () =>
          (await client.query<{ v: number | null }>(CURRENT_VERSION)).rows[0]?.v ?? 0,
      });
      // Every database gets its own secret id key once; later runs keep the first.
      await client.query(statement('setIdKey', [randomBytes(16)]));
      return { value: run, events: [] };
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

  async insertTasks({ tasks, now, claim }: InsertTasksParams): Promise<InsertedTask[]> {
    if (tasks.length === 0) return [];
    // Each task's id encodes its seq (task-ids.ts), so the table needs no index on id; the seqs
    // come from the identity's sequence, fetched ahead (seq-reserve.ts).
    const [ids, seqs] = await Promise.all([this.ids(), this.seqs.take(tasks.length)]);
    const records = tasks.map((t, i) => {
      const seq = seqs[i] as number;
      return newTaskRecord(t, { id: ids.encode(seq), seq });
    });
    const columns = [
      seqs,
      records.map((r) => r.id),
      tasks.map((t) => t.action),
      tasks.map((t) => JSON.stringify(t.data)),
      tasks.map((t) => t.priority),
      tasks.map((t) => t.runAt),
      tasks.map((t) => t.maxAttempts),
      tasks.map((t) => t.uniqueKey),
      tasks.map((t) => t.uniqueUntil),
      tasks.map((t) => t.createdAt),
      tasks.map((t) => t.concurrencyKey ?? null),
      tasks.map((t) => t.traceparent),
      tasks.map((t) => t.tracestate),
      // A worker of this process takes these as they are stored (InsertTasksParams.claim).
      claim?.take ?? null,
      claim?.owner ?? null,
      claim ? claim.now + claim.leaseMs : null,
      claim?.now ?? null,
    ];
    if (tasks.some(hasGraph))
      return this.transaction((run) => this.insertGraphTasks(run, tasks, records, now));
    const keys = [...new Set(tasks.flatMap((t) => (t.uniqueKey === null ? [] : [t.uniqueKey])))];
    // Without idempotency keys a batch is one autocommit statement: one round trip, one commit.
    // With keys, expired keys are freed first and holders read back, all in one transaction.
    const insert = async (run: Run): Promise<TxResult<InsertedTask[]>> => {
      if (keys.length > 0) await run('expireUniqueKey', [keys, now]);
      const statement = keys.length > 0 ? 'insertTasks' : 'insertUnkeyedTasks';
      const inserted = await run<{ seq: number; status: TaskStatus }>(statement, columns);
      const stored = new Set(inserted.rows.map((r) => r.seq));
      const claimed = new Set(inserted.rows.filter((r) => r.status === 'running').map((r) => r.seq));
      // Tasks whose key was taken (by an older task or one earlier in this batch) get that task.
      const byKey = new Map<string, TaskRecord>();
      if (stored.size < tasks.length) {
        const holders = await run<TaskRow>('findByUniqueKey', [keys]);
        for (const row of holders.rows) byKey.set(row.unique_key as string, toRecord(row));
      }
      const value = records.map((task): InsertedTask => {
        if (claimed.has(task.seq)) return { task, inserted: true, claimed: true };
        if (stored.has(task.seq)) return { task, inserted: true };
        const holder = task.uniqueKey === null ? undefined : byKey.get(task.uniqueKey);
        if (!holder)
          throw new QueueError('TQ_ERR_INTERNAL', `task ${task.id} was neither inserted nor deduplicated`);
        return { task: holder, inserted: false };
      });
      return { value, events: eventsOf.inserted(value) };
    };
    if (keys.length > 0) return this.transaction(insert);
    const { value, events } = await insert(this.run);
    this.announce(events);
    return value;
  }

  /**
   * A batch holding tasks with dependencies or a parent, task by task in one transaction (not
   * the hot path): each task's dependencies are found (an unknown one fails the whole batch),
   * locked and marked (lockDependencies), and decide how it starts (shared/graph.ts).
   */
  private async insertGraphTasks(
    run: Run,
    tasks: NewTask[],
    records: TaskRecord[],
    now: number,
  ): Promise<TxResult<InsertedTask[]>> {
    const results: InsertedTask[] = [];
    // Every existing dependency of the batch is found first and locked in one statement, in seq
    // order, before anything is written: locked task by task, two tasks of a batch naming
    // dependencies in opposite orders deadlocked with an ack batch completing them (40P01; see
    // the concurrency case of test/workflows.test.ts). Rows of this batch are not locked (no
    // other transaction sees them yet).
    const found = new Map<string, number>();
    for (const task of tasks)
      for (const ref of task.dependsOn ?? []) {
        if (!('id' in ref) || found.has(ref.id.toLowerCase())) continue;
        const row = await this.findRow(run, ref.id);
        if (row) found.set(ref.id.toLowerCase(), row.seq);
      }
    const existing = [...new Set(found.values())];
    const locked = existing.length > 0 ? (await run<DependencyRow>('lockDependencies', [existing])).rows : [];
    const lockedBySeq = new Map(locked.map((d) => [d.seq, d]));
    for (const [index, record] of records.entries()) {
      const task = tasks[index] as NewTask;
      const earlier = results.map((r) => r.task.seq);
      const seqs = dependencySeqs(task, index, earlier, (id) => found.get(id));
      // Earlier tasks this batch inserted are read as inserted; one that an idempotency key
      // matched to an older task is that task, locked now (rare: a key inside a graph batch).
      const ofBatch = new Map<number, DependencyRow>();
      for (const r of results)
        if (r.inserted)
          ofBatch.set(r.task.seq, {
            seq: r.task.seq,
            id: r.task.id,
            status: r.task.status,
            error: r.task.error,
          });
      const mine = seqs.filter((seq) => ofBatch.has(seq));
      if (mine.length > 0) await run('markDependents', [mine]);
      const held = seqs.filter((seq) => !ofBatch.has(seq) && !lockedBySeq.has(seq));
      if (held.length > 0)
        for (const d of (await run<DependencyRow>('lockDependencies', [held])).rows)
          lockedBySeq.set(d.seq, d);
      const deps = seqs.map((seq) => (ofBatch.get(seq) ?? lockedBySeq.get(seq)) as DependencyRow);
      const policy = record.onDependencyFailure;
      const start = graphStart(deps, policy, now);
      if (task.uniqueKey !== null) await run('expireUniqueKey', [[task.uniqueKey], now]);
      const inserted = await run<{ seq: number }>('insertGraphTask', [
        record.seq,
        record.id,
        task.action,
        JSON.stringify(task.data),
        task.priority,
        task.runAt,
        task.maxAttempts,
        task.uniqueKey,
        task.uniqueUntil,
        task.createdAt,
        record.concurrencyKey,
        task.traceparent,
        task.tracestate,
        start.status,
        record.parentId,
        start.pendingDeps,
        policy === 'run',
        start.error,
        start.processedAt,
      ]);
      if (inserted.rowCount === 0) {
        const holder = (await run<TaskRow>('findByUniqueKey', [[task.uniqueKey]])).rows[0];
        if (!holder)
          throw new QueueError('TQ_ERR_INTERNAL', `task ${record.id} was neither inserted nor deduplicated`);
        results.push({ task: toRecord(holder), inserted: false });
        continue;
      }
      if (start.edges.length > 0)
        await run('insertDeps', [
          start.edges.map(() => record.seq),
          start.edges.map((e) => e.dep),
          start.edges.map((e) => e.met),
        ]);
      const { status, pendingDeps, error, processedAt } = start;
      results.push({ task: { ...record, status, pendingDeps, error, processedAt }, inserted: true });
    }
    return { value: results, events: eventsOf.inserted(results) };
  }

  async getTask({ id }: { id: string }): Promise<TaskRecord | null> {
    const row = await this.findRow(this.run, id);
    return row ? toRecord(row) : null;
  }

  async listTasks(params: ListTasksParams): Promise<TaskRecord[]> {
    return (await this.findTasks(params)).tasks;
  }

  /** The walk of `params` (shared/list-filter.ts), whole ids decoded to their seqs. */
  private async query(params: ListTasksParams): Promise<ListQuery> {
    const ids = params.filter?.ids ? await this.ids() : null;
    return listQuery(params, (id) => ids?.decode(id) ?? [], this.capabilities.actionIndexedStatuses);
  }

  /** The statement of `query` in `shape`, on `client` (a transaction's) or the durable pool. */
  private async runList<R extends pg.QueryResultRow>(
    query: ListQuery,
    shape: ListShape,
    client: pg.Pool | pg.PoolClient = this.pool,
  ): Promise<R[]> {
    const { sql, values } = renderList(query, LIST_DIALECT, shape);
    try {
      return (await client.query<R>(sql, values)).rows;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async findTasks(params: ListTasksParams): Promise<FoundTasks> {
    const query = await this.query(params);
    const rows = await this.runList<TaskRow>(query, 'rows');
    const continueBelow = await this.continueBelow(query, rows.length);
    return { tasks: rows.map(toRecord), scans: query.scans, continueBelow };
  }

  /** Where a scan that found `found` rows continues, when its window ran out first. */
  private async continueBelow(
    query: ListQuery,
    found: number,
    client: pg.Pool | pg.PoolClient = this.pool,
  ): Promise<number | null> {
    if (!query.scans || found >= query.limit) return null;
    const [end] = await this.runList<{ n: number; last: number | null }>(query, 'windowEnd', client);
    return end && Number(end.n) >= query.window ? end.last : null;
  }

  async countMatching(params: ListTasksParams): Promise<MatchCount> {
    const window = params.scanWindow ?? params.limit;
    const query = await this.query({ ...params, limit: window, scanWindow: window });
    const [row] = await this.runList<{ n: number }>(query, 'count');
    const count = Number(row?.n ?? 0);
    if (!query.scans) return { count, exact: count < window };
    return { count, exact: (await this.continueBelow({ ...query, limit: Infinity }, 0)) === null };
  }

  async createOperation(p: CreateOperationParams): Promise<{ operation: OperationRecord; created: boolean }> {
    return this.transaction(async (run) => {
      const found = (row: OperationRow) => ({
        value: { operation: toOperationRecord(row), created: false },
        events: [],
      });
      await run('lockOperationRequest', [p.requestKey]);
      if (p.idempotencyKey !== null) {
        const held = (await run<OperationRow>('operationByIdempotencyKey', [p.idempotencyKey])).rows[0];
        if (held) return found(held);
      }
      const running = (await run<OperationRow>('runningOperationByRequest', [p.requestKey])).rows[0];
      if (running) return found(running);
      const maxSeq = (await run<{ seq: number }>('maxTaskSeq')).rows[0]?.seq ?? 0;
      const inserted = await run<OperationRow>('insertOperation', [
        p.id,
        p.op,
        JSON.stringify(p.filter),
        p.requestKey,
        p.idempotencyKey,
        p.createdBy,
        p.matched,
        p.matchedExact,
        maxSeq,
        p.now,
      ]);
      return {
        value: { operation: toOperationRecord(inserted.rows[0] as OperationRow), created: true },
        events: [],
      };
    });
  }

  async getOperation({ id }: { id: string }): Promise<OperationRecord | null> {
    const row = (await this.run<OperationRow>('getOperation', [id])).rows[0];
    return row ? toOperationRecord(row) : null;
  }

  async claimOperation({ owner, now, leaseMs }: { owner: string; now: number; leaseMs: number }) {
    const row = (await this.run<OperationRow>('claimOperation', [owner, now + leaseMs, now])).rows[0];
    return row ? toOperationRecord(row) : null;
  }

  async stepOperation(p: StepOperationParams): Promise<OperationRecord | null> {
    let retried: string[] = [];
    const stepped = await this.transaction<OperationRecord | null>(async (run, client) => {
      const held = (await run<OperationRow>('heldOperation', [p.id, p.owner])).rows[0];
      if (!held) return { value: null, events: [] };
      const op = toOperationRecord(held);
      const ids = await this.ids();
      const query = stepQuery(
        op,
        p.chunk,
        p.scanWindow,
        (id) => ids.decode(id),
        this.capabilities.actionIndexedStatuses,
      );
      const seqs = (await this.runList<{ seq: number }>(query, 'seqs', client)).map((r) => r.seq);
      const windowEnd =
        query.scans && seqs.length < query.limit
          ? ((await this.runList<{ n: number; last: number | null }>(query, 'windowEnd', client))[0] ?? null)
          : null;
      const { cursor, finished } = afterStep(
        query,
        seqs,
        windowEnd && { ...windowEnd, n: Number(windowEnd.n) },
      );
      const changed =
        seqs.length > 0 ? await this.applyBulk(run, op.op, seqs, p.now) : { done: 0, events: [] };
      retried = changed.retried ?? [];
      const advanced = await run<OperationRow>('advanceOperation', [
        p.id,
        changed.done,
        seqs.length - changed.done,
        cursor,
        stepStatus(finished),
        finished,
        p.now + p.leaseMs,
        p.now,
      ]);
      return { value: toOperationRecord(advanced.rows[0] as OperationRow), events: changed.events };
    });
    if (stepped && retried.length > 0) p.onRetried?.(retried);
    return stepped;
  }

  /** Changes the tasks of one step as `op` says; how many, and what to announce after the commit. */
  private async applyBulk(run: Run, op: BulkOperation, seqs: number[], now: number): Promise<BulkChange> {
    const ids = async (name: QueryName, values: unknown[]) =>
      (await run<{ id: string }>(name, values)).rows.map((r) => r.id);
    if (op === 'retry') {
      const rows = (
        await run<{
          seq: number;
          id: string;
          action: string;
          old_status: TaskStatus;
          old_error: string | null;
          has_dependents: boolean;
        }>('bulkRetry', [seqs, now])
      ).rows;
      const roots = rows
        .filter((r) => r.has_dependents)
        .map((r) => ({ seq: Number(r.seq), id: r.id, status: r.old_status, error: r.old_error }));
      const reblocked = roots.length > 0 ? await this.reblockCascade(run, roots) : [];
      const change = bulkRetried(rows);
      return { ...change, events: [...change.events, ...eventsOf.completed(reblocked.map((r) => r.id))] };
    }
    if (op === 'cancel') {
      const cancelled = await ids('bulkCancelQueued', [seqs, now]);
      const requested = await ids('bulkRequestCancel', [seqs]);
      return {
        done: cancelled.length + requested.length,
        events: eventsOf.bulkCancelled(cancelled, requested),
      };
    }
    const deleted = await ids('bulkDelete', [seqs]);
    return { done: deleted.length, events: eventsOf.completed(deleted) };
  }

  async releaseOperation(p: { id: string; owner: string }): Promise<void> {
    await this.run('releaseOperation', [p.id, p.owner]);
  }

  async recordOperationError(p: { id: string; owner: string; error: string; now: number }): Promise<void> {
    await this.run('operationError', [p.id, p.owner, textValue(p.error), p.now]);
  }

  async claimTasks(params: ClaimTasksParams): Promise<TaskRecord[]> {
    const { owner, limit, now, leaseMs, excludeActions } = params;
    if (limit <= 0) return [];
    const leaseExpiresAt = now + leaseMs;
    // Relaxed: a claim lost in a database crash is a lease expiry (the task runs again).
    const limitedNames = FlowClaim.limitedActions(params);
    const underLimits =
      limitedNames.length > 0 &&
      (await this.runOn<{ queued: boolean }>(this.relaxed, 'limitedQueued', [limitedNames])).rows[0]?.queued;
    let rows: ClaimedRow[];
    let start: ClaimStart | null = null;
    if (underLimits) {
      const { claimed, limited } = await this.transaction(
        async (run) => ({ value: await this.claimLimited(run, params, leaseExpiresAt), events: [] }),
        this.relaxed,
      );
      rows = claimed;
      if (limited.length > 0) params.onLimited?.(limited);
    } else {
      const skip = FlowClaim.plainExclusions(excludeActions, limitedNames);
      // Only a claim that skips no action moves the floor: one that skips some leaves their
      // tasks queued before where it stopped.
      start = skip.length === 0 ? this.claimFloor.start() : null;
      const from = start?.from ?? null;
      const claim = claimStatement(
        from ? 'claimFromFloor' : skip.length > 0 ? 'claimTasksExceptActions' : 'claimTasks',
        limit,
      );
      const values = [
        owner,
        leaseExpiresAt,
        now,
        ...(claim.limitParam ? [limit] : []),
        ...(from ? [from.priority, from.runAt] : skip.length > 0 ? [skip] : []),
      ];
      rows = (await this.runConfig<ClaimedRow>(this.relaxed, { name: claim.name, text: claim.text, values }))
        .rows;
    }
    const lease = { owner, leaseExpiresAt, claimedAt: now };
    const claimed = rows.map((row) => claimedRecord(row, lease, DECODE)).sort(compareClaimOrder);
    if (start) this.claimFloor.claimed(start, claimed.at(-1));
    return claimed;
  }

  /**
   * A claim under flow-control limits, inside one transaction (shared/flow-claim.ts decides;
   * this reads and writes; queries.ts says why each lock makes the limits hold across nodes).
   */
  private async claimLimited(
    run: Run,
    params: ClaimTasksParams,
    leaseExpiresAt: number,
  ): Promise<{ claimed: ClaimedRow[]; limited: LimitedClaim[] }> {
    const { owner, limit, now } = params;
    const flow = new FlowClaim(params.limits ?? [], params.excludeActions, limit, now, this.keyCursors);
    const rowsOf = async <R extends pg.QueryResultRow>(name: QueryName, values: unknown[]) =>
      (await run<R>(name, values)).rows;
    flow.addUnlimited(await rowsOf<Candidate>('claimCandidatesExcept', [now, limit, flow.excluded]));
    for (const { action, rateLimit, concurrencyPerKey } of flow.actions) {
      if (rateLimit) {
        const bucket = [action, now, rateLimit.perSecond, rateLimit.burst];
        const [refilled] = await rowsOf<{ tokens: number }>('refillRateLimit', bucket);
        flow.refilled(action, (refilled as { tokens: number }).tokens);
      }
      flow.addGroup(action, await rowsOf<Candidate>('claimCandidatesUnkeyed', [action, now, limit]), null);
      const keysFrom = async (after: string) =>
        (await rowsOf<{ key: string }>('queuedKeys', [action, after, flow.keyWindow])).map((r) => r.key);
      const after = await keysFrom(flow.cursor(action));
      const wrap = after.length < flow.keyWindow && flow.cursor(action) !== '';
      const keys = flow.keysToRead(action, after, wrap ? await keysFrom('') : []);
      if (keys.length === 0) continue;
      if (concurrencyPerKey !== undefined) await run('lockKeys', [action, keys]);
      const found = await rowsOf<Candidate & { running: number }>('claimCandidatesOfKeys', [
        action,
        keys,
        now,
        concurrencyPerKey ?? null,
        limit,
      ]);
      for (const key of keys) {
        const ofKey = found.filter((c) => c.concurrency_key === key);
        flow.addGroup(action, ofKey, ofKey[0]?.running ?? 0);
      }
    }
    const claimed = await rowsOf<ClaimedRow>('claimSeqs', [owner, leaseExpiresAt, now, flow.choose()]);
    const actions = claimed.map((r) => r.action);
    for (const { action, count } of flow.spending(actions)) await run('spendRateLimit', [action, count]);
    return { claimed, limited: flow.limited(actions) };
  }

  async completeTasks({ completions: given, now }: CompleteTasksParams): Promise<void> {
    if (given.length === 0) return;
    // In seq order, the order an insert locks its dependencies in (insertGraphTasks): the
    // statement's join walks the array, so its row locks come in that order too. The insert's
    // one ordered lock was what the concurrency case of test/workflows.test.ts needed; this
    // keeps the argument whole for a plan that walks the array as given.
    const completions = bySeq(given);
    // One statement, dependents included (queries.ts SETTLE_DONE): no transaction round trips.
    const { rows } = await this.run<DoneRow>('completeTasks', [
      now,
      completions.map((c) => c.seq),
      completions.map((c) => c.owner),
      completions.map((c) => c.attempt),
      completions.map((c) => jsonTextOf(c.result)),
      completions.map((c) => c.startedAt ?? null),
      this.historyMax,
    ]);
    // Only what the lease guards let through is announced: a stale lease writes nothing.
    const ids = rows.filter((r) => !r.dependent).map((r) => r.id);
    this.announce([...eventsOf.completed(ids), ...eventsOf.leftRunning(rows.filter((r) => r.dependent))]);
  }

  async failTasks({ failures: given, now }: FailTasksParams): Promise<void> {
    if (given.length === 0) return;
    const failures = bySeq(given); // as in completeTasks
    const { rows } = await this.run<DoneRow>('failTasks', [
      now,
      failures.map((f) => f.seq),
      failures.map((f) => f.owner),
      failures.map((f) => f.attempt),
      failures.map((f) => statusAfterFailure(f.outcome)),
      failures.map((f) => textValue(f.error)),
      failures.map((f) => f.retryAt ?? null),
      failures.map((f) => f.startedAt ?? null),
      failures.map((f) => f.ended ?? 'error'),
      failures.map((f) => (f.stack == null ? null : textValue(f.stack))),
      this.historyMax,
    ]);
    this.announce(eventsOf.leftRunning(rows));
  }

  async extendLeases({ owner, seqs, now, leaseMs, started = [] }: ExtendLeasesParams): Promise<HeldTask[]> {
    if (seqs.length === 0) return [];
    const startedAt = new Map(started.map((s) => [s.seq, s.startedAt]));
    // Relaxed: a renewal lost in a database crash is a lease expiry, and a lost start time is
    // written again by the next renewal or with the result.
    const { rows } = await this.runOn<{ id: string; cancel_requested: boolean }>(
      this.relaxed,
      'extendLeases',
      [owner, now + leaseMs, seqs, seqs.map((seq) => startedAt.get(seq) ?? null)],
    );
    return rows.map((r) => ({ id: r.id, cancelRequested: r.cancel_requested }));
  }

  async releaseTasks({ tasks }: ReleaseTasksParams): Promise<void> {
    if (tasks.length === 0) return;
    // Relaxed: a release lost in a database crash is a lease expiry.
    const { rows } = await this.runOn<{ id: string }>(this.relaxed, 'releaseTasks', [
      tasks.map((t) => t.seq),
      tasks.map((t) => t.owner),
      tasks.map((t) => t.attempt),
    ]);
    this.announce(eventsOf.released(rows.length));
  }

  async rescueExpiredLeases({ now, backoff }: RescueParams): Promise<RescueResult> {
    // Durable: a rescue may finish a task (out of attempts), and a finished status is kept.
    const { rows } = await this.run<DoneRow>('rescueExpiredLeases', [
      now,
      backoff?.baseMs ?? null,
      backoff?.maxMs ?? null,
      this.historyMax,
    ]);
    this.announce(eventsOf.leftRunning(rows));
    const own = rows.filter((r) => !r.dependent);
    return {
      requeued: own.filter((r) => r.status === 'queued').map((r) => r.id),
      failed: own.filter((r) => r.status !== 'queued').map((r) => r.id),
    };
  }

  async cancelTask({
    id,
    now,
  }: {
    id: string;
    now: number;
  }): Promise<{ outcome: CancelOutcome; task: TaskRecord | null }> {
    return this.transaction<{ outcome: CancelOutcome; task: TaskRecord | null }>(async (run) => {
      const row = await this.findRow(run, id);
      if (!row) return { value: { outcome: 'not_found', task: null }, events: [] };
      const decided = (outcome: CancelOutcome, task: TaskRow, also: PendingEvent[] = []) => ({
        value: { outcome, task: toRecord(task) },
        events: [...eventsOf.cancel(outcome, row.id), ...also],
      });
      const cancelled = (await run<TaskRow>('cancelQueued', [row.seq, now])).rows[0];
      if (cancelled) {
        const settled = cancelled.has_dependents
          ? (await run<DoneRow>('settleDependents', [[row.seq], [row.id], ['cancelled'], [null], now])).rows
          : [];
        return decided('cancelled', cancelled, eventsOf.leftRunning(settled));
      }
      const requested = (await run<TaskRow>('requestCancel', [row.seq])).rows[0];
      if (requested) return decided('cancel_requested', requested);
      return decided('already_finished', row);
    });
  }

  async getTaskGraph({ task, limit, countMax }: GetTaskGraphParams): Promise<TaskGraph> {
    const nodes = async (name: QueryName, key: number | string) =>
      (await this.run<GraphNodeRow & pg.QueryResultRow>(name, [key, limit])).rows.map(toGraphNode);
    const count = (name: QueryName, key: number | string) => async () =>
      (await this.run<{ n: number }>(name, [key, countMax])).rows[0]?.n ?? 0;
    const [dependsOn, dependents, children] = await Promise.all([
      nodes('dependenciesOf', task.seq),
      nodes('dependentsOf', task.seq),
      nodes('childNodesOf', task.id),
    ]);
    const [nDependsOn, nDependents, nChildren] = await Promise.all([
      graphCount(dependsOn, limit, count('countDependencies', task.seq)),
      graphCount(dependents, limit, count('countDependents', task.seq)),
      graphCount(children, limit, count('countChildren', task.id)),
    ]);
    return {
      dependsOn,
      dependents,
      children,
      counts: { dependsOn: nDependsOn, dependents: nDependents, children: nChildren },
    };
  }

  async listChildren({ id, limit }: { id: string; limit: number }): Promise<TaskRecord[]> {
    return (await this.run<TaskRow>('childrenOf', [id.toLowerCase(), limit])).rows.map(toRecord);
  }

  async waitForChildren(
    params: LeaseRef & { now: number },
  ): Promise<{ outcome: WaitOutcome; error: string | null }> {
    const { seq, owner, attempt, now } = params;
    return this.transaction<{ outcome: WaitOutcome; error: string | null }>(async (run) => {
      const parent = (
        await run<{ id: string; dep_failure_runs: boolean }>('lockLeased', [seq, owner, attempt])
      ).rows[0];
      if (!parent) return { value: { outcome: 'lease_lost', error: null }, events: [] };
      const children = (await run<DependencyRow>('lockChildren', [parent.id])).rows;
      const cycle = (await run<{ seq: number }>('dependentAmong', [seq, children.map((c) => c.seq)])).rows[0];
      const policy = parent.dep_failure_runs ? 'run' : 'fail';
      const start = cycle
        ? {
            ...graphStart([], policy, now),
            status: 'failed' as const,
            error: cycleError(children, cycle.seq),
          }
        : graphStart(children, policy, now);
      if (!cycle && start.edges.length > 0) {
        await run('insertDeps', [
          start.edges.map(() => seq),
          start.edges.map((e) => e.dep),
          start.edges.map((e) => e.met),
        ]);
        const open = start.edges.filter((e) => !e.met).map((e) => e.dep);
        if (open.length > 0) await run('markDependents', [open]);
      }
      const status = start.status === 'blocked' || start.status === 'queued' ? start.status : 'failed';
      await run('waitForChildren', [seq, owner, attempt, status, start.pendingDeps, start.error, now]);
      const settled =
        status === 'failed'
          ? (await run<DoneRow>('settleDependents', [[seq], [params.id], ['failed'], [start.error], now]))
              .rows
          : [];
      return {
        value: { outcome: status, error: start.error },
        events: eventsOf.leftRunning([{ id: params.id, status }, ...settled]),
      };
    });
  }

  /**
   * Blocks again the cascade of `roots` (just retried, as they ended): shared/graph.ts decides;
   * this walks the edges, locks what it changes (in seq order, after the roots it holds, the
   * order a completion takes a dependency and then its dependents) and writes, in `run`'s
   * transaction. A row that changed between the walk and its lock is left alone. Returns the
   * rows it changed.
   */
  private async reblockCascade(run: Run, roots: CascadeRow[]): Promise<{ id: string; status: TaskStatus }[]> {
    const candidates = new Map<number, { row: CascadeRow; cause: number }>();
    const found: { dep: number; row: CascadeRow }[] = [];
    const walk = async (frontier: CascadeRow[]) => {
      while (frontier.length > 0) {
        const level = (
          await run<CascadeRow & { dep: number }>('failedDependentsOf', [frontier.map((f) => f.seq)])
        ).rows.map(({ dep, ...row }) => ({ dep: Number(dep), row: { ...row, seq: Number(row.seq) } }));
        found.push(...level);
        frontier = cascadeStep(frontier, level, candidates);
      }
    };
    await walk(roots);
    const touched = [...new Set(found.map((f) => f.row.seq))];
    if (touched.length === 0) return [];
    // Locked, then compared with what the walk read: a row the user retried, cancelled or
    // deleted meanwhile is no candidate (and what hangs on it then stays as it is).
    const locked = new Map(
      (await run<CascadeRow>('lockCascade', [touched])).rows.map((r) => [Number(r.seq), r]),
    );
    for (const [seq, { row }] of candidates) {
      const now = locked.get(seq);
      if (!now || now.status !== row.status || now.error !== row.error) candidates.delete(seq);
    }
    const stable = found.filter((f) => locked.has(f.row.seq));
    const dependencies = (
      await run<CascadeRow & { task: number }>('dependenciesOfSeqs', [[...candidates.keys()]])
    ).rows.map(({ task, ...row }) => ({ task: Number(task), row: { ...row, seq: Number(row.seq) } }));
    const plan = reblockPlan(roots, candidates, stable, dependencies);
    if (plan.unmet.length > 0)
      await run('unmetEdges', [plan.unmet.map((e) => e.task), plan.unmet.map((e) => e.dep)]);
    const onlyRecount = plan.recount.filter(
      (seq) => !plan.reblock.includes(seq) && !plan.refail.some((f) => f.seq === seq),
    );
    return (
      await run<{ id: string; status: TaskStatus }>('reblockTasks', [
        plan.reblock,
        plan.refail.map((f) => f.seq),
        plan.refail.map((f) => f.status),
        plan.refail.map((f) => f.error),
        onlyRecount,
      ])
    ).rows;
  }

  async retryTask({
    id,
    now,
  }: {
    id: string;
    now: number;
  }): Promise<{ outcome: RetryOutcome; task: TaskRecord | null }> {
    return this.transaction<{ outcome: RetryOutcome; task: TaskRecord | null }>(async (run) => {
      const row = await this.findRow(run, id);
      if (!row) return { value: { outcome: 'not_found', task: null }, events: [] };
      const requeued = (
        await run<TaskRow & { old_status: TaskStatus; old_error: string | null }>('retryTask', [row.seq, now])
      ).rows[0];
      if (!requeued) return { value: { outcome: 'not_retryable', task: toRecord(row) }, events: [] };
      const reblocked = requeued.has_dependents
        ? await this.reblockCascade(run, [
            { seq: requeued.seq, id: requeued.id, status: requeued.old_status, error: requeued.old_error },
          ])
        : [];
      return {
        value: { outcome: 'requeued', task: toRecord(requeued) },
        events: [...eventsOf.retry('requeued', row.id), ...eventsOf.completed(reblocked.map((r) => r.id))],
      };
    });
  }

  async heartbeatNode({ node, now, pruneBefore }: HeartbeatNodeParams): Promise<void> {
    // Relaxed: a heartbeat lost in a database crash is a late heartbeat; the next one rewrites it.
    await this.runOn(this.relaxed, 'heartbeatNode', [
      node.id,
      node.host,
      node.pid,
      node.role,
      node.version,
      node.startedAt,
      node.heartbeatMs,
      node.concurrency,
      node.running,
      node.buffered,
      JSON.stringify(node.tasks),
      now,
      pruneBefore,
    ]);
  }

  async stopNode({ id, now }: { id: string; now: number }): Promise<void> {
    await this.run('stopNode', [id, now]);
  }

  async listNodes({ since }: { since: number }): Promise<NodeRecord[]> {
    const { rows } = await this.run<NodeRow<JsonValue>>('listNodes', [since]);
    return rows.map((row) => toNodeRecord(row, (value) => value));
  }

  async setProgress(params: LeaseRef & { progress: number; message: string | null }): Promise<void> {
    // Relaxed: progress lost in a database crash shows older progress, nothing more.
    const { rowCount } = await this.runOn(this.relaxed, 'setProgress', [
      params.seq,
      params.owner,
      params.attempt,
      params.progress,
      params.message === null ? null : textValue(params.message),
    ]);
    this.announce(eventsOf.progress(params.id, !!rowCount));
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

  async pauseAction({ action, now }: { action: string; now: number }): Promise<ActionPause> {
    // Durable: a pause the operator was told of stays. The claims' own statements read the table.
    const { rows } = await this.run<PauseRow>('pauseAction', [action, now]);
    return pauseOf(rows[0] as PauseRow);
  }

  async resumeAction({ action }: { action: string }): Promise<void> {
    const { rows } = await this.run<{ queued: number }>('resumeAction', [action]);
    // NOTIFY wakes the workers of every node.
    this.announce(eventsOf.requeued(rows[0]?.queued ?? 0));
  }

  async listPausedActions(): Promise<ActionPause[]> {
    return (await this.run<PauseRow>('pausedActions')).rows.map(pauseOf);
  }

  /** From the ring of migration 0011 and one seek per action with queued tasks. */
  async readActionStats({ since }: { since: number }): Promise<ActionStatsRead> {
    const [minutes, oldest] = await Promise.all([
      this.run<ActionMinuteRow>('actionMinutes', [since]),
      this.run<{ action: string; t: number | null }>('oldestQueuedByAction'),
    ]);
    return {
      minutes: minutes.rows.map(actionMinuteOf),
      oldestQueued: oldest.rows.flatMap((r) => (r.t === null ? [] : [{ action: r.action, createdAt: r.t }])),
    };
  }

  async listScheduleStates(): Promise<ScheduleState[]> {
    return (await this.run<ScheduleRow>('scheduleStates')).rows.map(scheduleStateOf);
  }

  async setSchedulePaused(params: { name: string; paused: boolean; now: number }): Promise<ScheduleState> {
    const { rows } = await this.run<ScheduleRow>('setSchedulePaused', [
      params.name,
      params.paused ? params.now : null,
    ]);
    return scheduleStateOf(rows[0] as ScheduleRow);
  }

  async recordScheduleRun(params: { name: string; at: number; taskId: string }): Promise<void> {
    await this.run('recordScheduleRun', [params.name, params.at, params.taskId]);
  }

  async insertAuditEntry({ entry }: { entry: NewAuditEntry }): Promise<void> {
    await this.run('insertAuditEntry', [
      entry.at,
      entry.token,
      entry.method,
      entry.route,
      entry.action,
      entry.target,
      entry.detail === null ? null : JSON.stringify(entry.detail),
      entry.status,
    ]);
  }

  async listAuditEntries(params: ListAuditParams): Promise<AuditRecord[]> {
    const filters = [params.token, params.action].filter((v): v is string => v !== undefined);
    const { rows } = await this.run<AuditRow & pg.QueryResultRow>(auditListingOf(params), [
      params.beforeSeq ?? AUDIT_SEQ_TOP,
      params.limit,
      ...filters,
    ]);
    return rows.map(auditRecordOf);
  }

  async pruneAuditEntries({ before, limit }: { before: number; limit: number }): Promise<number> {
    return (await this.run('pruneAudit', [before, limit])).rowCount ?? 0;
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
    this.events.close();
    await this.notifier.flush();
    await this.listener.close();
    await Promise.all([this.pool.end(), this.relaxed.end()]);
  }
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
