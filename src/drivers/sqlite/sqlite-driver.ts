/**
 * SQLite driver (better-sqlite3, WAL). better-sqlite3 is synchronous: each method runs its
 * statements and commits before it returns, so no transaction ever spans an `await` and several
 * connections (or processes) can share the file; writers take the lock with BEGIN IMMEDIATE and
 * wait up to `busy_timeout` for each other.
 *
 * Durability: with `sync: 'full'` (the default) every commit that records something a client was
 * promised (accept, result, failure, cancel, retry) is on disk before the method resolves: the
 * WAL is fdatasync'd off the main thread (see wal-sync.ts). Claims, lease renewals, releases and
 * rescues are not synced on their own: if one of those is lost on power loss the task is simply
 * back in its previous state, which at-least-once delivery already allows, and the next synced
 * commit makes them durable anyway (the WAL is written in order).
 */
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { QueueError } from '../../core/errors.js';
import type { ActionMinute, ActionPause } from '../../core/actions.js';
import type { LimitedClaim } from '../../core/flow.js';
import type { JsonValue, TaskRecord, TaskStatus } from '../../core/task.js';
import {
  ATTEMPT_HISTORY_DEFAULT,
  compareClaimOrder,
  dependencyError,
  hasGraph,
  isFinished,
  jsonTextOf,
  newTaskRecord,
  type NewTask,
} from '../../core/task.js';
import { ACTION_INDEXED_STATUSES } from '../../core/filter.js';
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
  InsertClaim,
  InsertedTask,
  InsertTasksParams,
  CreateOperationParams,
  FoundTasks,
  MatchCount,
  OperationRecord,
  StepOperationParams,
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
import { describeSqliteError, unusablePathReason } from './db-path.js';
import { CURRENT_VERSION, IS_APPLIED, MIGRATIONS, MIGRATIONS_TABLE, RECORD_APPLIED } from './migrations.js';
import { runMigrations } from '../shared/migrator.js';
import { Checkpointer, SAFETY_PAGES } from './checkpointer.js';
import { TaskIdCodec } from '../task-ids.js';
import { DriverEventBus, eventsOf, statusAfterFailure, type PendingEvent } from '../shared/events.js';
import { WalSyncer } from './wal-sync.js';
import {
  CONNECTION_SETTINGS,
  INSERT_COLUMNS,
  insertTasksSql,
  LIST_DIALECT,
  PRAGMA,
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

/** The largest multi-row INSERT (352 bound values, far below SQLite's limit of 32,766). */
const MAX_ROWS_PER_INSERT = 32;

export interface SqliteDriverOptions {
  /** File path, or ':memory:' for tests. */
  path: string;
  sync?: 'full' | 'normal';
  busyTimeoutMs?: number;
  /** Attempts each task's history keeps. @defaultValue ATTEMPT_HISTORY_DEFAULT (20) */
  attemptHistoryMax?: number;
  /** Where failures off the request path go (WAL checkpoints); silent if not given. */
  logger?: Logger;
}

type TaskRow = GenericTaskRow<string, number>;
/** SQLite returns JSON as text and flags as 0/1. */
const DECODE: RowDecoders<string, number> = {
  json: (text) => JSON.parse(text) as JsonValue,
  flag: (n) => n === 1,
};
const toRecord = (row: TaskRow): TaskRecord => toTaskRecord(row, DECODE);
type ClaimedRow = GenericClaimedRow<string, number>;
type DependencyFields = Omit<DependencyRow, 'seq'>;

/** The error's SQLite result code (`SQLITE_BUSY`, ...), or '' for anything else. */
const sqliteCode = (err: unknown): string => String((err as { code?: unknown }).code ?? '');

/**
 * Switches the file to WAL mode. On a new file opened by several processes at once, the switch
 * can fail with SQLITE_BUSY at once: SQLite does not wait on its busy handler there (seen about
 * once in 200 opens of three `taskq migrate` at once). So it is tried again, briefly, within
 * the busy timeout; any other error, or a lock held longer, is the caller's.
 */
function enterWalMode(db: Database.Database, busyTimeoutMs: number): void {
  const deadline = Date.now() + busyTimeoutMs;
  for (;;) {
    try {
      db.pragma(PRAGMA.walMode);
      return;
    } catch (err) {
      if (sqliteCode(err) !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/**
 * SQLite errors that mean "not now" rather than a fault of taskq become TQ_ERR_UNAVAILABLE (HTTP
 * 503), named for what an operator can act on: a full disk (SQLITE_FULL), or a write lock another
 * connection held past the busy timeout (SQLITE_BUSY; SQLITE_LOCKED within one connection). The
 * failed transaction is rolled back whole, and the next write simply tries again.
 */
function unavailableError(err: unknown, busyTimeoutMs: number): unknown {
  const code = sqliteCode(err);
  if (code === 'SQLITE_FULL')
    return new QueueError('TQ_ERR_UNAVAILABLE', 'the database disk is full', { cause: err });
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new QueueError(
      'TQ_ERR_UNAVAILABLE',
      `the database is locked: another connection held its write lock for longer than the busy timeout (${busyTimeoutMs} ms)`,
      { cause: err },
    );
  }
  return err;
}

/**
 * How long a write waits for the lock once another connection has held it past the whole busy
 * timeout (see `write`).
 */
export const LOCKED_WAIT_MS = 100;

export class SqliteDriver implements QueueDriver {
  readonly capabilities: DriverCapabilities = {
    crossProcessNotify: false,
    skipLocked: false,
    actionIndexedStatuses: ACTION_INDEXED_STATUSES,
  };
  readonly description: string;
  private readonly path: string;
  private readonly db: Database.Database;
  private readonly busyTimeoutMs: number;
  /** A write waited out the whole busy timeout and none has taken the lock since. */
  private lockHeldLong = false;
  private readonly events = new DriverEventBus();
  private readonly statements = new Map<QueryName, Database.Statement>();
  /** Filter statements by their combination of conditions and shape (shared/list-filter.ts). */
  private readonly lists = new Map<string, Database.Statement>();
  /** Multi-row INSERT statements by row count (insertTasksSql). */
  private readonly inserts: Database.Statement[] = [];
  /** Makes commits durable; null when nothing is synced (`sync: 'normal'`, or in memory). */
  private readonly wal: WalSyncer | null;
  private readonly checkpointer: Checkpointer | null = null;
  /** Read from the database on first use: it exists only once migrations have run. */
  private idCodec: TaskIdCodec | null = null;
  /** Where each keyed action's next limited claim starts reading keys (shared/flow-claim.ts). */
  private readonly keyCursors = new KeyCursors();
  /** Attempts a task's history keeps (the statements that append to it drop older ones). */
  private readonly historyMax: number;

  constructor(options: SqliteDriverOptions) {
    this.historyMax = options.attemptHistoryMax ?? ATTEMPT_HISTORY_DEFAULT;
    this.description = `sqlite ${options.path}`;
    this.path = options.path;
    if (options.path !== ':memory:') {
      // Before mkdir and SQLite: some unusable paths they would write to first (db-path.ts).
      const unusable = unusablePathReason(options.path);
      if (unusable) throw new QueueError('TQ_ERR_UNAVAILABLE', unusable);
      try {
        mkdirSync(dirname(options.path), { recursive: true });
      } catch (err) {
        throw new QueueError(
          'TQ_ERR_UNAVAILABLE',
          `cannot create the folder of ${options.path}: ${(err as Error).message}`,
        );
      }
    }
    const busyTimeoutMs = (this.busyTimeoutMs = options.busyTimeoutMs ?? 5000);
    let db: Database.Database | undefined;
    try {
      db = new Database(options.path, { timeout: busyTimeoutMs });
      enterWalMode(db, busyTimeoutMs);
      for (const setting of CONNECTION_SETTINGS) db.pragma(setting);
      if (options.path !== ':memory:') db.pragma(PRAGMA.walAutocheckpoint(SAFETY_PAGES));
    } catch (err) {
      db?.close();
      throw new QueueError(
        'TQ_ERR_UNAVAILABLE',
        `cannot open SQLite database ${options.path}: ${describeSqliteError(err)}`,
      );
    }
    this.db = db;
    const durable = (options.sync ?? 'full') === 'full' && options.path !== ':memory:';
    this.wal = durable ? new WalSyncer(`${options.path}-wal`) : null;
    if (options.path !== ':memory:') {
      const logger = options.logger;
      this.checkpointer = new Checkpointer(options.path, (report) => {
        if (report.kind === 'failed')
          logger?.error(
            { db: options.path, err: report.message },
            `WAL checkpoint failed: ${report.message}`,
          );
        else logger?.info({ db: options.path, failures: report.failures }, 'WAL checkpoints succeed again');
      });
    }
  }

  private stmt(name: QueryName): Database.Statement {
    let statement = this.statements.get(name);
    if (!statement) {
      statement = this.db.prepare(SQL[name]);
      this.statements.set(name, statement);
    }
    return statement;
  }

  /**
   * Runs `fn` in a BEGIN IMMEDIATE transaction. The commit reaches the OS but is not synced: use
   * `durableWrite` for what a client relies on. BEGIN/COMMIT are statements prepared once
   * (`db.transaction()` builds a new wrapper per call, which cost as much as a small claim).
   * Writes never nest, so no savepoints are needed.
   *
   * better-sqlite3 waits for the lock on the main thread, so every write that waits out the busy
   * timeout blocks the event loop for all of it. While another connection holds the lock for
   * long (a backup, an operator's shell), each overdue timer's write (claims, acks, heartbeats)
   * would block it in turn, and a POST would wait behind several of them. So once one write has
   * waited in vain for the whole timeout, the next ones wait only LOCKED_WAIT_MS and fail as
   * unavailable (503, or a retry later) until one takes the lock again.
   */
  private write<T>(fn: () => T): T {
    const shortWait = this.lockHeldLong;
    if (shortWait) this.db.pragma(`busy_timeout = ${Math.min(LOCKED_WAIT_MS, this.busyTimeoutMs)}`);
    try {
      this.stmt('begin').run();
      this.lockHeldLong = false;
    } catch (err) {
      if (sqliteCode(err).startsWith('SQLITE_BUSY')) this.lockHeldLong = true;
      throw unavailableError(err, this.busyTimeoutMs);
    } finally {
      if (shortWait) this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    }
    try {
      const result = fn();
      this.stmt('commit').run();
      return result;
    } catch (err) {
      // SQLite may have rolled back already (it does on some SQLITE_FULL errors).
      if (this.db.inTransaction) this.stmt('rollback').run();
      throw unavailableError(err, this.busyTimeoutMs);
    }
  }

  private ids(): TaskIdCodec {
    if (!this.idCodec) {
      if (!this.stmt('isMigrated').get())
        throw new QueueError('TQ_ERR_UNAVAILABLE', 'the database is not migrated: run taskq migrate');
      this.idCodec = new TaskIdCodec((this.stmt('readIdKey').get() as { value: Buffer }).value);
    }
    return this.idCodec;
  }

  /** The row of the task with this public id, if any (ids are not indexed: see task-ids.ts). */
  private findTask(id: string): TaskRow | undefined {
    for (const seq of this.ids().decode(id)) {
      const row = this.stmt('getTask').get({ seq, id }) as TaskRow | undefined;
      if (row) return row;
    }
    const legacy = this.stmt('legacySeq').get(id) as { seq: number } | undefined;
    return legacy ? (this.stmt('getTask').get({ seq: legacy.seq, id }) as TaskRow | undefined) : undefined;
  }

  /** `write`, then resolves once the commit is on disk (with `sync: 'full'`). */
  private async durableWrite<T>(fn: () => T): Promise<T> {
    const result = this.write(fn);
    await this.wal?.sync();
    return result;
  }

  /** fdatasync calls made so far (0 with `sync: 'normal'`); for tests and benchmarks. */
  get walSyncs(): number {
    return this.wal?.syncs ?? 0;
  }

  on<E extends DriverEventName>(event: E, listener: (payload: DriverEvents[E]) => void): Unsubscribe {
    return this.events.on(event, listener);
  }

  async migrate(params: { onApplied?: (name: string) => void } = {}): Promise<MigrateResult> {
    try {
      return await this.applyMigrations(params);
    } catch (err) {
      // The first writes to the file: a full disk or a file that turned read-only shows here.
      throw new QueueError(
        'TQ_ERR_UNAVAILABLE',
        `cannot migrate SQLite database ${this.path}: ${describeSqliteError(err)}`,
        { cause: err },
      );
    }
  }

  private async applyMigrations(params: { onApplied?: (name: string) => void }): Promise<MigrateResult> {
    const result = await runMigrations(
      MIGRATIONS,
      {
        // Under the write lock: as a plain statement it reads the schema, then writes, and a commit
        // by another migrator in between fails it at once (SQLITE_BUSY, no busy wait).
        prepare: async () => {
          this.write(() => this.db.exec(MIGRATIONS_TABLE));
        },
        applyOnce: async (migration) =>
          this.write(() => {
            if (this.db.prepare(IS_APPLIED).get(migration.version)) return false;
            this.db.prepare(RECORD_APPLIED).run(migration.version, migration.name, Date.now());
            this.db.exec(migration.sql);
            return true;
          }),
        currentVersion: async () => (this.db.prepare(CURRENT_VERSION).get() as { v: number | null }).v ?? 0,
      },
      // Each migration committed on its own: reported as it is in place.
      params.onApplied,
    );
    await this.wal?.sync();
    return result;
  }

  async ping(): Promise<void> {
    this.stmt('ping').get();
  }

  async insertTasks({ tasks, now, claim }: InsertTasksParams): Promise<InsertedTask[]> {
    const ids = this.ids();
    const out = this.write(() => {
      let lastSeq = (this.stmt('lastSeq').get() as { value: number }).value;
      const rows: unknown[] = []; // values of the rows not written yet, INSERT_COLUMNS per row
      const results: InsertedTask[] = [];
      for (const task of tasks) {
        if (task.uniqueKey !== null) {
          this.insertRows(rows.splice(0)); // an earlier row of this batch may hold the same key
          const existing = this.stmt('findByUniqueKey').get(task.uniqueKey) as TaskRow | undefined;
          if (existing && (existing.unique_until ?? 0) > now) {
            results.push({ task: toRecord(existing), inserted: false });
            continue;
          }
          if (existing) this.stmt('expireUniqueKey').run(existing.seq);
        }
        const seq = ++lastSeq;
        const id = ids.encode(seq);
        if (hasGraph(task)) {
          this.insertRows(rows.splice(0)); // its dependencies may be earlier rows of this batch
          const earlier = results.map((r) => r.task.seq);
          results.push({
            inserted: true,
            task: this.insertGraphTask(task, { id, seq }, results.length, earlier, now),
          });
          continue;
        }
        const data = JSON.stringify(task.data);
        rows.push(seq, id, task.action, data, task.priority, task.runAt, task.maxAttempts);
        rows.push(task.uniqueKey, task.uniqueUntil, task.concurrencyKey ?? null, task.createdAt);
        rows.push(task.traceparent, task.tracestate);
        // Built from the input rather than read back (RETURNING * cost a third of the insert).
        results.push({ inserted: true, task: newTaskRecord(task, { id, seq }) });
      }
      this.insertRows(rows);
      if (claim) this.claimInserted(results, claim);
      return results;
    });
    // Workers may start on a committed task while its sync is under way: the producer is
    // answered only after the sync, and a task lost to power loss before it was never accepted.
    this.events.emit(eventsOf.inserted(out));
    await this.wal?.sync();
    return out;
  }

  /**
   * A task with dependencies or a parent, under the write lock: its dependencies are found
   * (an unknown one fails the whole insert), marked as having dependents, and decide whether
   * it starts blocked (shared/graph.ts); then the row and its edges are written.
   */
  private insertGraphTask(
    task: NewTask,
    ref: { id: string; seq: number },
    index: number,
    earlier: readonly number[],
    now: number,
  ): TaskRecord {
    const seqs = dependencySeqs(task, index, earlier, (id) => this.findTask(id)?.seq);
    const deps = seqs.map((seq) => ({
      seq,
      ...(this.stmt('lockDependency').get({ seq }) as DependencyFields),
    }));
    const policy = task.onDependencyFailure ?? 'fail';
    const start = graphStart(deps, policy, now);
    this.stmt('insertGraphTask').run({
      ...ref,
      action: task.action,
      data: JSON.stringify(task.data),
      status: start.status,
      priority: task.priority,
      runAt: task.runAt,
      maxAttempts: task.maxAttempts,
      uniqueKey: task.uniqueKey,
      uniqueUntil: task.uniqueUntil,
      concurrencyKey: task.concurrencyKey ?? null,
      createdAt: task.createdAt,
      traceparent: task.traceparent,
      tracestate: task.tracestate,
      parentId: task.parentId ?? null,
      pendingDeps: start.pendingDeps,
      depFailureRuns: policy === 'run' ? 1 : 0,
      error: start.error,
      processedAt: start.processedAt,
    });
    for (const edge of start.edges)
      this.stmt('insertDep').run({ task: ref.seq, dep: edge.dep, met: edge.met ? 1 : 0 });
    return {
      ...newTaskRecord(task, ref),
      status: start.status,
      pendingDeps: start.pendingDeps,
      error: start.error,
      processedAt: start.processedAt,
    };
  }

  /**
   * The tasks of an insert that a worker of this process takes (InsertTasksParams.claim),
   * claimed in the same transaction by the claim's own statement, which leaves paused actions
   * queued.
   */
  private claimInserted(results: InsertedTask[], claim: InsertClaim): void {
    const seqs = results.filter((r, i) => claim.take[i] && r.inserted).map((r) => r.task.seq);
    if (seqs.length === 0) return;
    const { owner, leaseMs, now } = claim;
    const rows = this.stmt('claimSeqs').all({
      owner,
      now,
      leaseUntil: now + leaseMs,
      seqs: JSON.stringify(seqs),
    }) as { seq: number }[];
    const claimed = new Set(rows.map((r) => r.seq));
    for (const r of results) if (claimed.has(r.task.seq)) r.claimed = true;
  }

  /** Writes rows in few statements: as many of 32 rows as fit, then one each of 16, 8, 4, 2, 1. */
  private insertRows(values: unknown[]): void {
    let at = 0;
    for (let size = MAX_ROWS_PER_INSERT; size >= 1; size >>= 1) {
      while (values.length - at >= size * INSERT_COLUMNS) {
        const statement = (this.inserts[size] ??= this.db.prepare(insertTasksSql(size)));
        statement.run(values.slice(at, (at += size * INSERT_COLUMNS)));
      }
    }
  }

  async getTask({ id }: { id: string }): Promise<TaskRecord | null> {
    const row = this.findTask(id);
    return row ? toRecord(row) : null;
  }

  async getTaskGraph({ task, limit, countMax }: GetTaskGraphParams): Promise<TaskGraph> {
    const nodes = (name: QueryName, named: Record<string, unknown>) =>
      (this.stmt(name).all({ ...named, limit }) as GraphNodeRow[]).map(toGraphNode);
    const count = (name: QueryName, named: Record<string, unknown>) => async () =>
      (this.stmt(name).get({ ...named, limit: countMax }) as { n: number }).n;
    const bySeq = { seq: task.seq };
    const byParent = { parentId: task.id };
    const dependsOn = nodes('dependenciesOf', bySeq);
    const dependents = nodes('dependentsOf', bySeq);
    const children = nodes('childNodesOf', byParent);
    return {
      dependsOn,
      dependents,
      children,
      counts: {
        dependsOn: await graphCount(dependsOn, limit, count('countDependencies', bySeq)),
        dependents: await graphCount(dependents, limit, count('countDependents', bySeq)),
        children: await graphCount(children, limit, count('countChildren', byParent)),
      },
    };
  }

  async listChildren({ id, limit }: { id: string; limit: number }): Promise<TaskRecord[]> {
    return (this.stmt('childrenOf').all({ parentId: id.toLowerCase(), limit }) as TaskRow[]).map(toRecord);
  }

  async waitForChildren(
    params: LeaseRef & { now: number },
  ): Promise<{ outcome: WaitOutcome; error: string | null }> {
    const { seq, owner, attempt, now } = params;
    let settled: { id: string; status: TaskStatus }[] = [];
    const result = await this.durableWrite((): { outcome: WaitOutcome; error: string | null } => {
      const parent = this.stmt('lockLeased').get({ seq, owner, attempt }) as
        { id: string; dep_failure_runs: number } | undefined;
      if (!parent) return { outcome: 'lease_lost', error: null };
      const children = this.stmt('lockChildren').all({ parentId: parent.id }) as DependencyRow[];
      const cycle = this.stmt('dependentAmong').get({
        seq,
        seqs: JSON.stringify(children.map((c) => c.seq)),
      }) as { seq: number } | undefined;
      const start = cycle
        ? {
            ...graphStart([], 'fail', now),
            status: 'failed' as const,
            error: cycleError(children, cycle.seq),
          }
        : graphStart(children, parent.dep_failure_runs === 1 ? 'run' : 'fail', now);
      if (!cycle) {
        for (const edge of start.edges)
          this.stmt('insertDep').run({ task: seq, dep: edge.dep, met: edge.met ? 1 : 0 });
        const open = start.edges.filter((e) => !e.met).map((e) => e.dep);
        if (open.length > 0) this.stmt('markDependents').run({ seqs: JSON.stringify(open) });
      }
      this.stmt('waitForChildren').run({
        seq,
        owner,
        attempt,
        now,
        status: start.status,
        pending: start.pendingDeps,
        error: start.error,
      });
      if (start.status === 'failed')
        settled = this.settle([{ seq, id: params.id, status: 'failed', error: start.error }], now);
      return {
        outcome: start.status === 'blocked' || start.status === 'queued' ? start.status : 'failed',
        error: start.error,
      };
    });
    const own =
      result.outcome === 'lease_lost'
        ? []
        : [{ id: params.id, status: result.outcome === 'failed' ? ('failed' as const) : result.outcome }];
    this.events.emit(eventsOf.leftRunning([...own, ...settled]));
    return result;
  }

  async listTasks(params: ListTasksParams): Promise<TaskRecord[]> {
    return (await this.findTasks(params)).tasks;
  }

  /** The walk of `params` (shared/list-filter.ts); whole ids decode to their seqs. */
  private query(params: ListTasksParams): ListQuery {
    return listQuery(params, (id) => this.ids().decode(id), this.capabilities.actionIndexedStatuses);
  }

  /** Runs the statement of `query` in `shape`, prepared once per combination of conditions. */
  private runList<R>(query: ListQuery, shape: ListShape): R[] {
    const key = `${shape}:${query.key}`;
    const { sql, values } = renderList(query, LIST_DIALECT, shape);
    let statement = this.lists.get(key);
    if (!statement) this.lists.set(key, (statement = this.db.prepare(sql)));
    return statement.all(values) as R[];
  }

  async findTasks(params: ListTasksParams): Promise<FoundTasks> {
    const query = this.query(params);
    const rows = this.runList<TaskRow>(query, 'rows');
    return {
      tasks: rows.map(toRecord),
      scans: query.scans,
      continueBelow: this.continueBelow(query, rows.length),
    };
  }

  /** Where a scan that found `found` rows continues, when its window ran out first. */
  private continueBelow(query: ListQuery, found: number): number | null {
    if (!query.scans || found >= query.limit) return null;
    const [end] = this.runList<{ n: number; last: number | null }>(query, 'windowEnd');
    return end && end.n >= query.window ? end.last : null;
  }

  async countMatching(params: ListTasksParams): Promise<MatchCount> {
    const window = params.scanWindow ?? params.limit;
    const query = this.query({ ...params, limit: window, scanWindow: window });
    const [row] = this.runList<{ n: number }>(query, 'count');
    const count = row?.n ?? 0;
    if (!query.scans) return { count, exact: count < window };
    return { count, exact: this.continueBelow({ ...query, limit: Infinity }, 0) === null };
  }

  async createOperation(p: CreateOperationParams): Promise<{ operation: OperationRecord; created: boolean }> {
    const found = (row: unknown) => ({ operation: toOperationRecord(row as OperationRow), created: false });
    return this.durableWrite(() => {
      if (p.idempotencyKey !== null) {
        const held = this.stmt('operationByIdempotencyKey').get({ key: p.idempotencyKey });
        if (held) return found(held);
      }
      const running = this.stmt('runningOperationByRequest').get({ requestKey: p.requestKey });
      if (running) return found(running);
      const maxSeq = (this.stmt('maxTaskSeq').get() as { seq: number }).seq;
      const row = this.stmt('insertOperation').get({
        ...p,
        filter: JSON.stringify(p.filter),
        matchedExact: p.matchedExact ? 1 : 0,
        maxSeq,
      });
      return { operation: toOperationRecord(row as OperationRow), created: true };
    });
  }

  async getOperation({ id }: { id: string }): Promise<OperationRecord | null> {
    const row = this.stmt('getOperation').get({ id }) as OperationRow | undefined;
    return row ? toOperationRecord(row) : null;
  }

  async claimOperation({ owner, now, leaseMs }: { owner: string; now: number; leaseMs: number }) {
    const row = this.write(
      () =>
        this.stmt('claimOperation').get({ owner, now, leaseUntil: now + leaseMs }) as
          OperationRow | undefined,
    );
    return row ? toOperationRecord(row) : null;
  }

  async stepOperation(p: StepOperationParams): Promise<OperationRecord | null> {
    let events: PendingEvent[] = [];
    let retried: string[] = [];
    const row = await this.durableWrite(() => {
      const held = this.stmt('heldOperation').get({ id: p.id, owner: p.owner }) as OperationRow | undefined;
      if (!held) return undefined;
      const op = toOperationRecord(held);
      const query = stepQuery(
        op,
        p.chunk,
        p.scanWindow,
        (id) => this.ids().decode(id),
        this.capabilities.actionIndexedStatuses,
      );
      const seqs = this.runList<{ seq: number }>(query, 'seqs').map((r) => r.seq);
      const windowEnd =
        query.scans && seqs.length < query.limit
          ? (this.runList<{ n: number; last: number | null }>(query, 'windowEnd')[0] ?? null)
          : null;
      const { cursor, finished } = afterStep(query, seqs, windowEnd);
      const changed =
        seqs.length > 0 ? this.applyBulk(op.op, JSON.stringify(seqs), p.now) : { done: 0, events: [] };
      events = changed.events;
      retried = changed.retried ?? [];
      return this.stmt('advanceOperation').get({
        id: p.id,
        done: changed.done,
        skipped: seqs.length - changed.done,
        cursor,
        status: stepStatus(finished),
        finished: finished ? 1 : 0,
        leaseUntil: p.now + p.leaseMs,
        now: p.now,
      }) as OperationRow;
    });
    this.events.emit(events);
    if (row && retried.length > 0) p.onRetried?.(retried);
    return row ? toOperationRecord(row) : null;
  }

  /** Of @seqs (JSON), the tasks a retry takes that have dependents, as they ended. */
  private retryRoots(seqs: string): CascadeRow[] {
    const rows = this.stmt('retryableOf').all({ seqs }) as (CascadeRow & { has_dependents: number })[];
    return rows
      .filter((r) => r.has_dependents === 1)
      .map(({ seq, id, status, error }) => ({ seq, id, status, error }));
  }

  /**
   * Blocks again the cascade of `roots` (just retried, as they ended), inside the retry's write
   * transaction: shared/graph.ts decides, this walks the edges and writes (postgres-driver.ts
   * does the same, with row locks). Returns the rows it changed.
   */
  private reblockCascade(roots: CascadeRow[]): { id: string; status: TaskStatus }[] {
    if (roots.length === 0) return [];
    const candidates = new Map<number, { row: CascadeRow; cause: number }>();
    const found: { dep: number; row: CascadeRow }[] = [];
    for (let frontier = roots; frontier.length > 0;) {
      const level = (
        this.stmt('failedDependentsOf').all({
          seqs: JSON.stringify(frontier.map((f) => f.seq)),
        }) as (CascadeRow & {
          dep: number;
        })[]
      ).map(({ dep, ...row }) => ({ dep, row }));
      found.push(...level);
      frontier = cascadeStep(frontier, level, candidates);
    }
    if (found.length === 0) return [];
    const dependencies = (
      this.stmt('dependenciesOfSeqs').all({ seqs: JSON.stringify([...candidates.keys()]) }) as (CascadeRow & {
        task: number;
      })[]
    ).map(({ task, ...row }) => ({ task, row }));
    const plan = reblockPlan(roots, candidates, found, dependencies);
    for (const edge of plan.unmet) this.stmt('unmetEdge').run(edge);
    const refail = new Map(plan.refail.map((f) => [f.seq, f]));
    const reopen = new Set(plan.reblock);
    const changed: { id: string; status: TaskStatus }[] = [];
    for (const seq of new Set([...plan.reblock, ...refail.keys(), ...plan.recount])) {
      const f = refail.get(seq);
      const row = this.stmt('reblockTask').get({
        seq,
        reopen: reopen.has(seq) ? 1 : 0,
        status: f?.status ?? null,
        error: f?.error ?? null,
      }) as { id: string; status: TaskStatus };
      if (reopen.has(seq) || f) changed.push(row);
    }
    return changed;
  }

  /** Changes the tasks of one step (@seqs, JSON) as `op` says; how many, and what to announce. */
  private applyBulk(op: BulkOperation, seqs: string, now: number): BulkChange {
    const ids = (name: QueryName) =>
      (this.stmt(name).all({ seqs, now }) as { id: string }[]).map((r) => r.id);
    if (op === 'retry') {
      const roots = this.retryRoots(seqs);
      const requeued = this.stmt('bulkRetry').all({ seqs, now }) as { id: string; action: string }[];
      const reblocked = this.reblockCascade(roots).map((r) => r.id);
      const change = bulkRetried(requeued);
      return { ...change, events: [...change.events, ...eventsOf.completed(reblocked)] };
    }
    if (op === 'cancel') {
      const cancelled = ids('bulkCancelQueued');
      const requested = ids('bulkRequestCancel');
      return {
        done: cancelled.length + requested.length,
        events: eventsOf.bulkCancelled(cancelled, requested),
      };
    }
    this.stmt('raiseSeqFloor').run(); // a deleted task's seq, and so its id, is never issued again
    const deleted = ids('bulkDelete');
    return { done: deleted.length, events: eventsOf.completed(deleted) };
  }

  async releaseOperation(p: { id: string; owner: string }): Promise<void> {
    this.write(() => this.stmt('releaseOperation').run(p));
  }

  async recordOperationError(p: { id: string; owner: string; error: string; now: number }): Promise<void> {
    this.write(() => this.stmt('operationError').run(p));
  }

  async claimTasks(params: ClaimTasksParams): Promise<TaskRecord[]> {
    const { owner, limit, now, leaseMs, excludeActions } = params;
    if (limit <= 0) return [];
    const leaseUntil = now + leaseMs;
    const limited = FlowClaim.limitedActions(params);
    let held: LimitedClaim[] = [];
    const rows = this.write(() => {
      if (limited.length > 0) {
        const found = this.stmt('limitedQueued').get({ actions: JSON.stringify(limited) }) as {
          queued: number;
        };
        if (found.queued === 1) return this.claimLimited(params, leaseUntil, (l) => (held = l));
      }
      const skip = FlowClaim.plainExclusions(excludeActions, limited);
      if (skip.length === 0)
        return this.stmt('claimTasks').all({ owner, now, leaseUntil, limit }) as ClaimedRow[];
      const named = { owner, now, leaseUntil, limit, excludeActions: JSON.stringify(skip) };
      return this.stmt('claimTasksExceptActions').all(named) as ClaimedRow[];
    });
    if (held.length > 0) params.onLimited?.(held);
    // RETURNING rows come in no particular order.
    const lease = { owner, leaseExpiresAt: leaseUntil, claimedAt: now };
    return rows.map((row) => claimedRecord(row, lease, DECODE)).sort(compareClaimOrder);
  }

  /**
   * A claim under flow-control limits, inside the claim's transaction (shared/flow-claim.ts
   * decides; this reads and writes). The write lock makes it whole: no other claim reads a
   * bucket or counts a key's running tasks until this one commits.
   */
  private claimLimited(
    params: ClaimTasksParams,
    leaseUntil: number,
    report: (limited: LimitedClaim[]) => void,
  ): ClaimedRow[] {
    const { owner, limit, now } = params;
    const flow = new FlowClaim(params.limits ?? [], params.excludeActions, limit, now, this.keyCursors);
    const all = <T>(name: QueryName, named: Record<string, unknown>) => this.stmt(name).all(named) as T[];
    flow.addUnlimited(all('claimCandidatesExcept', { now, limit, excluded: JSON.stringify(flow.excluded) }));
    for (const { action, rateLimit } of flow.actions) {
      if (rateLimit) {
        const bucket = { action, now, perSecond: rateLimit.perSecond, burst: rateLimit.burst };
        flow.refilled(action, (this.stmt('refillRateLimit').get(bucket) as { tokens: number }).tokens);
      }
      const ofKey = (key: string | null, n: number) =>
        all<Candidate>('claimCandidatesOfKey', { action, key, now, limit: n });
      flow.addGroup(action, ofKey(null, limit), null);
      const keysFrom = (after: string) =>
        all<{ key: string }>('queuedKeys', { action, after, limit: flow.keyWindow }).map((r) => r.key);
      const after = keysFrom(flow.cursor(action));
      const wrap = after.length < flow.keyWindow && flow.cursor(action) !== '';
      for (const key of flow.keysToRead(action, after, wrap ? keysFrom('') : [])) {
        const running = (this.stmt('runningOfKey').get({ action, key }) as { n: number }).n;
        flow.addGroup(action, ofKey(key, flow.readLimit(action, running)), running);
      }
    }
    const seqs = flow.choose();
    const rows = all<ClaimedRow>('claimSeqs', { owner, now, leaseUntil, seqs: JSON.stringify(seqs) });
    const claimed = rows.map((r) => r.action);
    for (const { action, count } of flow.spending(claimed))
      this.stmt('spendRateLimit').run({ action, count });
    report(flow.limited(claimed));
    return rows;
  }

  async completeTasks({ completions, now }: CompleteTasksParams): Promise<void> {
    if (completions.length === 0) return;
    // Only what the guards let through is announced: a stale lease writes nothing.
    const { ids, settled } = await this.durableWrite(() => {
      const stmt = this.stmt('completeTasks');
      const done: DependencyRow[] = [];
      const ids = completions
        .filter((c) => {
          const row = stmt.get({
            seq: c.seq,
            owner: c.owner,
            attempt: c.attempt,
            now,
            result: jsonTextOf(c.result),
            startedAt: c.startedAt ?? null,
            historyMax: this.historyMax,
          }) as { has_dependents: number } | undefined;
          if (row?.has_dependents === 1)
            done.push({ seq: c.seq, id: c.id, status: 'completed', error: null });
          return row !== undefined;
        })
        .map((c) => c.id);
      return { ids, settled: this.settle(done, now) };
    });
    this.events.emit([...eventsOf.completed(ids), ...eventsOf.leftRunning(settled)]);
  }

  async failTasks({ failures, now }: FailTasksParams): Promise<void> {
    if (failures.length === 0) return;
    const { written, settled } = await this.durableWrite(() => {
      const stmt = this.stmt('failTasks');
      const done: DependencyRow[] = [];
      const written = failures.flatMap((f) => {
        const status = statusAfterFailure(f.outcome);
        const params = { seq: f.seq, owner: f.owner, attempt: f.attempt, now, status, error: f.error };
        const row = stmt.get({
          ...params,
          retryAt: f.retryAt ?? null,
          startedAt: f.startedAt ?? null,
          ended: f.ended ?? 'error',
          stack: f.stack ?? null,
          historyMax: this.historyMax,
        }) as { has_dependents: number } | undefined;
        if (row?.has_dependents === 1) done.push({ seq: f.seq, id: f.id, status, error: f.error });
        return row ? [{ id: f.id, status }] : [];
      });
      return { written, settled: this.settle(done, now) };
    });
    this.events.emit(eventsOf.leftRunning([...written, ...settled]));
  }

  /**
   * Settles the dependents of tasks that just finished, under the write lock, in rounds: each
   * unsettled edge into a finished task is settled once; a completed dependency (or any, for a
   * dependent that runs on dependency failure) counts down its dependent's pending_deps, which
   * is queued at 0; a failed or cancelled one fails (cancels) a blocked dependent, whose own
   * dependents are settled in the next round. Returns the dependents it changed.
   */
  private settle(finished: readonly DependencyRow[], now: number): { id: string; status: TaskStatus }[] {
    const changed: { id: string; status: TaskStatus }[] = [];
    let round = finished.filter((f) => isFinished(f.status));
    while (round.length > 0) {
      const next: DependencyRow[] = [];
      for (const f of round) {
        const edges = this.stmt('settleEdges').all({ dep: f.seq }) as { task_seq: number }[];
        for (const { task_seq: seq } of edges) {
          if (f.status !== 'completed') {
            const status = f.status === 'cancelled' ? 'cancelled' : 'failed';
            const failed = this.stmt('failDependent').get({ seq, status, error: dependencyError(f), now }) as
              DependencyFields | undefined;
            if (failed) {
              changed.push({ id: failed.id, status: failed.status });
              next.push({ seq, ...failed });
              continue;
            }
          }
          const released = this.stmt('releaseDependent').get({ seq }) as {
            id: string;
            status: TaskStatus;
            pending_deps: number;
          };
          if (released.status === 'queued' && released.pending_deps === 0)
            changed.push({ id: released.id, status: 'queued' });
        }
      }
      round = next;
    }
    return changed;
  }

  async extendLeases({ owner, seqs, now, leaseMs, started = [] }: ExtendLeasesParams): Promise<HeldTask[]> {
    if (seqs.length === 0) return [];
    const params = {
      owner,
      leaseUntil: now + leaseMs,
      seqs: JSON.stringify(seqs),
      started: JSON.stringify(started.map((s) => [s.seq, s.startedAt])),
    };
    const rows = this.write(
      () => this.stmt('extendLeases').all(params) as { id: string; cancel_requested: number }[],
    );
    return rows.map((r) => ({ id: r.id, cancelRequested: r.cancel_requested === 1 }));
  }

  async releaseTasks({ tasks }: ReleaseTasksParams): Promise<void> {
    if (tasks.length === 0) return;
    const count = this.write(
      () =>
        tasks.filter(
          (t) =>
            this.stmt('releaseTasks').run({ seq: t.seq, owner: t.owner, attempt: t.attempt }).changes === 1,
        ).length,
    );
    this.events.emit(eventsOf.released(count));
  }

  async rescueExpiredLeases({ now, backoff }: RescueParams): Promise<RescueResult> {
    const params = {
      now,
      baseMs: backoff?.baseMs ?? null,
      maxMs: backoff?.maxMs ?? null,
      historyMax: this.historyMax,
    };
    const { rows, settled } = this.write(() => {
      const rows = this.stmt('rescueExpiredLeases').all(params) as (DependencyRow & {
        has_dependents: number;
      })[];
      return {
        rows,
        settled: this.settle(
          rows.filter((r) => r.has_dependents === 1),
          now,
        ),
      };
    });
    const requeued = rows.filter((r) => r.status === 'queued').map((r) => r.id);
    const failed = rows.filter((r) => r.status !== 'queued').map((r) => r.id);
    this.events.emit(eventsOf.leftRunning([...rows, ...settled]));
    return { requeued, failed };
  }

  async cancelTask({
    id,
    now,
  }: {
    id: string;
    now: number;
  }): Promise<{ outcome: CancelOutcome; task: TaskRecord | null }> {
    let settled: { id: string; status: TaskStatus }[] = [];
    const { outcome, task } = await this.durableWrite(() =>
      this.changeTask(id, (seq): CancelOutcome => {
        const cancelled = this.stmt('cancelQueued').get({ seq, now }) as
          { has_dependents: number } | undefined;
        if (cancelled) {
          if (cancelled.has_dependents === 1)
            settled = this.settle([{ seq, id, status: 'cancelled', error: null }], now);
          return 'cancelled';
        }
        if (this.stmt('requestCancel').run({ seq }).changes === 1) return 'cancel_requested';
        return 'already_finished';
      }),
    );
    this.events.emit([...eventsOf.cancel(outcome, id), ...eventsOf.leftRunning(settled)]);
    return { outcome, task };
  }

  async retryTask({
    id,
    now,
  }: {
    id: string;
    now: number;
  }): Promise<{ outcome: RetryOutcome; task: TaskRecord | null }> {
    let reblocked: { id: string }[] = [];
    const { outcome, task } = await this.durableWrite(() =>
      this.changeTask(id, (seq): RetryOutcome => {
        const roots = this.retryRoots(JSON.stringify([seq]));
        if (this.stmt('retryTask').run({ seq, now }).changes !== 1) return 'not_retryable';
        reblocked = this.reblockCascade(roots);
        return 'requeued';
      }),
    );
    this.events.emit([...eventsOf.retry(outcome, id), ...eventsOf.completed(reblocked.map((r) => r.id))]);
    return { outcome, task };
  }

  /** Finds a task by its public id once, applies `change` by seq and reads the result back. */
  private changeTask<O extends string>(
    id: string,
    change: (seq: number) => O,
  ): { outcome: O | 'not_found'; task: TaskRecord | null } {
    const seq = this.findTask(id)?.seq;
    if (seq === undefined) return { outcome: 'not_found', task: null };
    const outcome = change(seq);
    return { outcome, task: toRecord(this.stmt('getTask').get({ seq, id }) as TaskRow) };
  }

  async heartbeatNode({ node, now, pruneBefore }: HeartbeatNodeParams): Promise<void> {
    this.write(() => {
      this.stmt('heartbeatNode').run({ ...node, tasks: JSON.stringify(node.tasks), now });
      this.stmt('pruneNodes').run({ pruneBefore });
    });
  }

  async stopNode({ id, now }: { id: string; now: number }): Promise<void> {
    this.write(() => this.stmt('stopNode').run({ id, now }));
  }

  async listNodes({ since }: { since: number }): Promise<NodeRecord[]> {
    const rows = this.stmt('listNodes').all({ since }) as NodeRow<string>[];
    return rows.map((row) => toNodeRecord(row, (text) => JSON.parse(text) as JsonValue));
  }

  async setProgress(params: LeaseRef & { progress: number; message: string | null }): Promise<void> {
    const { seq, owner, attempt, progress, message } = params;
    const { changes } = this.write(() =>
      this.stmt('setProgress').run({ seq, owner, attempt, progress, message }),
    );
    this.events.emit(eventsOf.progress(params.id, changes === 1));
  }

  /** From the trigger-kept counters (migration 0004, docs/stats.md): exact, and as fast at any size. */
  async countTasks(): Promise<TaskCounts> {
    const rows = this.stmt('countsFromCounters').all() as CounterRow[];
    const oldest = this.stmt('oldestQueuedBySeq').get() as { t: number } | undefined;
    return countsFromRows(rows, oldest?.t ?? null);
  }

  /** From the per-minute rollup (migration 0004): whole minutes, from the one holding `since`. */
  async throughput({ since }: { since: number }): Promise<ThroughputPoint[]> {
    return this.stmt('throughputFromRollup').all({ since }) as ThroughputPoint[];
  }

  async pauseAction({ action, now }: { action: string; now: number }): Promise<ActionPause> {
    return this.durableWrite(() => {
      this.stmt('pauseAction').run({ action, now });
      return pauseOf(this.stmt('pausedAction').get({ action }) as PauseRow);
    });
  }

  async resumeAction({ action }: { action: string }): Promise<void> {
    const queued = await this.durableWrite(() => {
      const { changes } = this.stmt('resumeAction').run({ action });
      const row = this.stmt('queuedOfAction').get({ action }) as { queued: number } | undefined;
      return changes === 1 ? (row?.queued ?? 0) : 0;
    });
    // Workers here wake at once; other processes on the file find them on their next poll.
    this.events.emit(eventsOf.requeued(queued));
  }

  async listPausedActions(): Promise<ActionPause[]> {
    return (this.stmt('pausedActions').all() as PauseRow[]).map(pauseOf);
  }

  /** From the ring of migration 0011 and one seek per action with queued tasks. */
  async readActionStats({ since }: { since: number }): Promise<ActionStatsRead> {
    const minutes: ActionMinute[] = (this.stmt('actionMinutes').all({ since }) as ActionMinuteRow[]).map(
      actionMinuteOf,
    );
    const oldest = this.stmt('oldestQueuedByAction').all() as { action: string; t: number | null }[];
    return {
      minutes,
      oldestQueued: oldest.flatMap((r) => (r.t === null ? [] : [{ action: r.action, createdAt: r.t }])),
    };
  }

  async listScheduleStates(): Promise<ScheduleState[]> {
    return (this.stmt('scheduleStates').all() as ScheduleRow[]).map(scheduleStateOf);
  }

  async setSchedulePaused(params: { name: string; paused: boolean; now: number }): Promise<ScheduleState> {
    const { name } = params;
    return this.durableWrite(() => {
      this.stmt('setSchedulePaused').run({ name, pausedAt: params.paused ? params.now : null });
      return scheduleStateOf(this.stmt('scheduleState').get({ name }) as ScheduleRow);
    });
  }

  async recordScheduleRun(params: { name: string; at: number; taskId: string }): Promise<void> {
    await this.durableWrite(() => this.stmt('recordScheduleRun').run(params));
  }

  async insertAuditEntry({ entry }: { entry: NewAuditEntry }): Promise<void> {
    const detail = entry.detail === null ? null : JSON.stringify(entry.detail);
    await this.durableWrite(() => this.stmt('insertAuditEntry').run({ ...entry, detail }));
  }

  async listAuditEntries(params: ListAuditParams): Promise<AuditRecord[]> {
    const rows = this.stmt(auditListingOf(params)).all({
      beforeSeq: params.beforeSeq ?? AUDIT_SEQ_TOP,
      limit: params.limit,
      ...(params.token !== undefined && { token: params.token }),
      ...(params.action !== undefined && { action: params.action }),
    }) as AuditRow[];
    return rows.map(auditRecordOf);
  }

  async pruneAuditEntries({ before, limit }: { before: number; limit: number }): Promise<number> {
    return this.write(() => this.stmt('pruneAudit').run({ before, limit }).changes);
  }

  async countPrunableTasks({ finishedBefore }: { finishedBefore: FinishedBefore }): Promise<number> {
    return (this.stmt('countPrunableTasks').get(finishedBefore) as { n: number }).n;
  }

  async pruneTasks({
    finishedBefore,
    limit,
  }: {
    finishedBefore: FinishedBefore;
    limit: number;
  }): Promise<number> {
    return this.write(() => {
      this.stmt('raiseSeqFloor').run(); // the newest task may be among those deleted
      return this.stmt('pruneTasks').run({ ...finishedBefore, limit }).changes;
    });
  }

  async close(): Promise<void> {
    this.events.close();
    if (this.db.open) this.db.close();
    this.wal?.close();
    await this.checkpointer?.close();
  }
}
