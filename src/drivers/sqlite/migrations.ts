/**
 * SQLite schema, forward-only (shared/migrator.ts runs it). Each migration runs in its own
 * IMMEDIATE transaction that first records its version, so two processes starting at once apply
 * it exactly once (the second waits for the write lock, then sees the version and skips). Times
 * are epoch milliseconds. What the schema both drivers share is for (columns, indexes, counters)
 * is explained here once; postgres/migrations.ts points back to these comments.
 */
import { ACTION_RING_MINUTES, RUN_BUCKET_COLUMNS, RUN_MS_BUCKETS } from '../../core/actions.js';
import type { Migration } from '../shared/migrator.js';

/** The table of applied versions. */
export const MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS taskq_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`;
export const IS_APPLIED = `SELECT 1 FROM taskq_migrations WHERE version = ?`;
export const RECORD_APPLIED = `INSERT INTO taskq_migrations (version, name, applied_at) VALUES (?, ?, ?)`;
export const CURRENT_VERSION = `SELECT max(version) AS v FROM taskq_migrations`;

/** Migration 0004's ring upsert: the finish of row `new` in its minute (see that migration). */
const COUNT_FINISH_OF_NEW = `INSERT INTO task_throughput (slot, minute, completed, failed)
        VALUES ((new.processed_at / 60000) % 1440, (new.processed_at / 60000) * 60000,
                new.status = 'completed', new.status = 'failed')
          ON CONFLICT (slot) DO UPDATE SET
            completed = CASE WHEN minute = excluded.minute THEN completed + excluded.completed
                             WHEN minute < excluded.minute THEN excluded.completed ELSE completed END,
            failed    = CASE WHEN minute = excluded.minute THEN failed + excluded.failed
                             WHEN minute < excluded.minute THEN excluded.failed ELSE failed END,
            minute    = max(minute, excluded.minute);`;

/** The columns after `status` as 0001 made them; the table rebuilds of 0003 and 0008 keep them. */
const COLUMNS_AFTER_STATUS_0001 = `priority         INTEGER NOT NULL DEFAULT 0,
        run_at           INTEGER NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL,
        result           TEXT,
        error            TEXT,
        progress         INTEGER,
        progress_message TEXT,
        unique_key       TEXT,
        unique_until     INTEGER,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        started_at       INTEGER,
        processed_at     INTEGER`;

/** A rebuild's last step: tasks_rebuilt becomes tasks, with 0003's indexes. */
const REPLACE_TASKS_0003 = `DROP TABLE tasks;
      ALTER TABLE tasks_rebuilt RENAME TO tasks;
      CREATE INDEX tasks_claimable ON tasks (priority DESC, run_at, seq) WHERE status = 'queued';
      CREATE INDEX tasks_status_seq ON tasks (status, seq);
      CREATE INDEX tasks_action_seq ON tasks (action, seq);
      CREATE INDEX tasks_finished ON tasks (status, processed_at) WHERE processed_at IS NOT NULL;
      CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;`;

/** The statuses task_counts has a column for: 0004's five, and `blocked` from 0008. */
const STATUSES_0004 = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const STATUSES_0008 = ['blocked', ...STATUSES_0004];

/**
 * Migration 0004's triggers, which keep task_counts (one column per status in `statuses`) and the
 * throughput ring. 0008 rebuilds the tasks table (dropping its triggers) and makes them again
 * with the `blocked` column.
 */
function countTriggers(statuses: readonly string[]): string {
  const cols = statuses.join(', ');
  const isNew = statuses.map((s) => `new.status = '${s}'`).join(', ');
  const addExcluded = statuses.map((s) => `${s} = ${s} + excluded.${s}`).join(', ');
  const moved = statuses
    .map((s) => `${s} = ${s} + (new.status = '${s}') - (old.status = '${s}')`)
    .join(',\n          ');
  const minusOld = statuses.map((s) => `${s} = ${s} - (old.status = '${s}')`).join(', ');
  const insertNew = `INSERT INTO task_counts (action, ${cols})
        VALUES (new.action, ${isNew})
          ON CONFLICT (action) DO UPDATE SET ${addExcluded};`;
  return `
      -- One row per action, a column per status: a status change is one UPDATE of one row.
      CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
        ${insertNew}
      END;
      -- the action's row exists: its task was counted when inserted
      CREATE TRIGGER tasks_count_update AFTER UPDATE OF status ON tasks
        WHEN old.status <> new.status AND old.action = new.action BEGIN
        UPDATE task_counts SET
          ${moved}
         WHERE action = new.action;
      END;
      -- pruning lowers the counts; the throughput of the minutes it deletes from stays
      CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
        UPDATE task_counts SET ${minusOld} WHERE action = old.action;
      END;
      -- No statement changes an action; should one, the task moves between the actions' rows.
      CREATE TRIGGER tasks_count_action AFTER UPDATE OF action ON tasks
        WHEN old.action <> new.action BEGIN
        UPDATE task_counts SET ${minusOld} WHERE action = old.action;
        ${insertNew}
      END;

      -- A finish is a row entering completed or failed (or inserted so); its minute is its
      -- processed_at. A stale minute (a day older than its slot's) is dropped, never mixed in.
      CREATE TRIGGER tasks_throughput_update AFTER UPDATE OF status ON tasks
        WHEN new.status IN ('completed', 'failed') AND old.status <> new.status
         AND new.processed_at IS NOT NULL BEGIN
        ${COUNT_FINISH_OF_NEW}
      END;
      CREATE TRIGGER tasks_throughput_insert AFTER INSERT ON tasks
        WHEN new.status IN ('completed', 'failed') AND new.processed_at IS NOT NULL BEGIN
        ${COUNT_FINISH_OF_NEW}
      END;`;
}

/**
 * Migration 0011's per-action ring: for each run-time bucket, whether `run` (an expression in ms,
 * NULL for an attempt that never started) falls in it, as 0/1.
 */
export function runBucketFlags(run: string): string[] {
  return RUN_BUCKET_COLUMNS.map((_, i) => {
    const lo = i === 0 ? null : RUN_MS_BUCKETS[i - 1];
    const hi = RUN_MS_BUCKETS[i];
    const parts = [lo === null ? null : `${run} > ${lo}`, hi === undefined ? null : `${run} <= ${hi}`];
    return `coalesce(${parts.filter((p) => p !== null).join(' AND ')}, 0)`;
  });
}

/** The ring's upsert of one column: added within the minute, restarted by a newer minute. */
export const ringColumn = (table: string, column: string) =>
  `${column} = CASE WHEN ${table}.minute = excluded.minute THEN ${table}.${column} + excluded.${column}
                    WHEN ${table}.minute < excluded.minute THEN excluded.${column} ELSE ${table}.${column} END`;

const ACTION_RING_COLUMNS = ['completed', 'failed', ...RUN_BUCKET_COLUMNS];

/** Migration 0011's upsert: the finish of row `new` in its action's minute. */
const COUNT_ACTION_FINISH_OF_NEW = `INSERT INTO task_action_minutes (action, slot, minute, ${ACTION_RING_COLUMNS.join(', ')})
        VALUES (new.action, (new.processed_at / 60000) % ${ACTION_RING_MINUTES}, (new.processed_at / 60000) * 60000,
                new.status = 'completed', new.status = 'failed',
                ${runBucketFlags('(new.processed_at - new.started_at)').join(',\n                ')})
          ON CONFLICT (action, slot) DO UPDATE SET
            ${ACTION_RING_COLUMNS.map((c) => ringColumn('task_action_minutes', c)).join(',\n            ')},
            minute = max(task_action_minutes.minute, excluded.minute);`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: '0001_init',
    sql: `
      CREATE TABLE tasks (
        seq              INTEGER PRIMARY KEY,        -- insertion order: newest first is seq DESC
        id               TEXT    NOT NULL UNIQUE,    -- uuid v4, the public id
        action           TEXT    NOT NULL,
        data             TEXT    NOT NULL,           -- JSON object
        status           TEXT    NOT NULL
                         CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
        priority         INTEGER NOT NULL DEFAULT 0, -- higher runs first
        run_at           INTEGER NOT NULL,           -- not claimed before (delays, retry backoff)
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL,
        result           TEXT,                       -- JSON value
        error            TEXT,
        progress         INTEGER,
        progress_message TEXT,
        unique_key       TEXT,                       -- idempotency key, deduplicates until unique_until
        unique_until     INTEGER,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        started_at       INTEGER,
        processed_at     INTEGER
      );
      -- the claim query walks this index in claim order
      CREATE INDEX tasks_claimable ON tasks (priority DESC, run_at, seq) WHERE status = 'queued';
      -- heartbeats (by owner) and the rescuer (by expiry) look only at running tasks
      CREATE INDEX tasks_lease_owner ON tasks (lease_owner) WHERE status = 'running';
      CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE status = 'running';
      -- listing newest first, filtered by status or action
      CREATE INDEX tasks_status_seq ON tasks (status, seq);
      CREATE INDEX tasks_action_seq ON tasks (action, seq);
      -- throughput per minute and retention pruning
      CREATE INDEX tasks_finished ON tasks (status, processed_at) WHERE processed_at IS NOT NULL;
      CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;
    `,
  },
  {
    version: 2,
    name: '0002_drop_lease_indexes',
    // Running tasks are few (at most concurrency + prefetch per worker), so heartbeats and the
    // rescuer find them through tasks_status_seq just as fast; the two lease indexes cost an
    // index write on every claim and every ack, which measurably slowed draining.
    sql: `
      DROP INDEX IF EXISTS tasks_lease_owner;
      DROP INDEX IF EXISTS tasks_lease_expiry;
    `,
  },
  {
    version: 3,
    name: '0003_ids_from_seq',
    // Ids become the encryption of `seq` (task-ids.ts), so the unique index on `id` goes: every
    // insert wrote it at a random place. SQLite cannot drop a UNIQUE constraint, so the table is
    // rebuilt. Ids issued before this migration were random; taskq_legacy_ids still finds them.
    // New seqs start above `seq_floor` too, which pruning raises to the highest seq it may delete,
    // so a pruned task's seq, and therefore its id, is never issued again.
    sql: `
      CREATE TABLE taskq_meta (name TEXT PRIMARY KEY, value ANY NOT NULL);
      INSERT INTO taskq_meta (name, value) VALUES
        ('task_id_key', randomblob(16)),
        ('seq_floor', (SELECT coalesce(max(seq), 0) FROM tasks));
      CREATE TABLE taskq_legacy_ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO taskq_legacy_ids (id, seq) SELECT id, seq FROM tasks;

      CREATE TABLE tasks_rebuilt (
        seq              INTEGER PRIMARY KEY,        -- insertion order, above taskq_meta.seq_floor
        id               TEXT    NOT NULL,           -- uuid v4 encoding seq (task-ids.ts)
        action           TEXT    NOT NULL,
        data             TEXT    NOT NULL,
        status           TEXT    NOT NULL
                         CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
        ${COLUMNS_AFTER_STATUS_0001}
      );
      INSERT INTO tasks_rebuilt SELECT * FROM tasks;
      ${REPLACE_TASKS_0003}
    `,
  },
  {
    version: 4,
    name: '0004_stats_counters',
    // Counts and throughput kept by the database as rows change, so reading them costs the same
    // at any table size (docs/stats.md). SQLite has no statement triggers; row triggers run in
    // C within the writing statement, and their WHEN clauses keep heartbeats and progress writes
    // (no status change) free. One writer at a time, so the counters need no shards.
    // task_throughput is a ring of 1440 minutes (one day): a minute's row is reused a day later,
    // so it never needs pruning. This runs under the write lock: the backfill misses nothing.
    sql: `
      CREATE TABLE task_counts (
        action    TEXT    PRIMARY KEY,
        queued    INTEGER NOT NULL,
        running   INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        failed    INTEGER NOT NULL,
        cancelled INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE task_throughput (
        slot      INTEGER PRIMARY KEY, -- (minute / 60000) % 1440
        minute    INTEGER NOT NULL,    -- start of the minute, epoch ms
        completed INTEGER NOT NULL,
        failed    INTEGER NOT NULL
      );

      -- the one full count: existing tasks, and the finishes of the last day
      INSERT INTO task_counts (action, queued, running, completed, failed, cancelled)
      SELECT action, sum(status = 'queued'), sum(status = 'running'),
             sum(status = 'completed'), sum(status = 'failed'), sum(status = 'cancelled')
        FROM tasks GROUP BY action;
      INSERT INTO task_throughput (slot, minute, completed, failed)
      SELECT (m / 60000) % 1440, m, sum(status = 'completed'), sum(status = 'failed')
        FROM (SELECT (processed_at / 60000) * 60000 AS m, status
                FROM tasks, (SELECT CAST(unixepoch() / 60 AS INTEGER) * 60000 AS at) c
               WHERE status IN ('completed', 'failed')
                 AND processed_at >= c.at - 1439 * 60000 AND processed_at < c.at + 60000)
       GROUP BY m;

      ${countTriggers(STATUSES_0004)}
    `,
  },
  {
    version: 5,
    name: '0005_claimed_at',
    // started_at now means "the handler started", reported by the worker; the claim's time gets a
    // column of its own, so a task waiting in a worker's buffer does not look started. A task
    // claimed before this migration keeps its claim time as both.
    sql: `
      ALTER TABLE tasks ADD COLUMN claimed_at INTEGER;
      UPDATE tasks SET claimed_at = started_at WHERE started_at IS NOT NULL;
    `,
  },
  {
    version: 6,
    name: '0006_trace_context',
    // The producer's W3C trace context, so the worker's spans continue its trace (docs/tracing.md).
    // NULL when the producer traced nothing; no index: it is read with the row, never searched.
    sql: `
      ALTER TABLE tasks ADD COLUMN traceparent TEXT;
      ALTER TABLE tasks ADD COLUMN tracestate TEXT;
    `,
  },
  {
    version: 7,
    name: '0007_flow_control',
    // Rate limits and concurrency keys (docs/flow-control.md). A claim that applies limits reads
    // a limited action's queued tasks per key, in claim order, through tasks_claimable_key (the
    // queued tasks of one action and key are a range of it; the distinct keys are found by
    // seeking from one to the next), and counts a key's running tasks through tasks_running_key
    // (at most the cap per key, so the count is cheap). Both are partial: tasks leave them when
    // claimed, and tasks without a key never enter the running one. The token bucket of each
    // rate-limited action is one row of taskq_rate_limits, updated in the claim's transaction.
    sql: `
      ALTER TABLE tasks ADD COLUMN concurrency_key TEXT;
      CREATE INDEX tasks_claimable_key ON tasks (action, concurrency_key, priority DESC, run_at, seq)
        WHERE status = 'queued';
      CREATE INDEX tasks_running_key ON tasks (action, concurrency_key)
        WHERE status = 'running' AND concurrency_key IS NOT NULL;
      CREATE TABLE taskq_rate_limits (
        action      TEXT    PRIMARY KEY,
        tokens      REAL    NOT NULL, -- whole tokens may be spent: one per task claimed
        refilled_at INTEGER NOT NULL  -- epoch ms the tokens were counted at
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 8,
    name: '0008_workflows',
    // Task dependencies and fan-out / fan-in (docs/workflows.md). A new status, `blocked`: a task
    // waiting for dependencies, queued by the write that completes its last one. SQLite cannot
    // change a CHECK constraint, so the table is rebuilt (rows, indexes and triggers kept; the
    // triggers come back counting `blocked` in a new task_counts column). New columns:
    // - parent_id: the task whose handler enqueued this one (ctx.enqueue); tasks_parent finds
    //   the children of a task (partial: only children enter it).
    // - pending_deps: dependencies not settled yet; 0 for every task without dependencies.
    // - has_dependents: set when a dependent is inserted, so completing a task that has none
    //   (nearly all) costs the ack nothing more than reading this flag back.
    // - dep_failure_runs: on_dependency_failure = 'run' (1) or 'fail' (0).
    // - waits: how often its handler waited for its children (a resumed run sees > 0).
    // task_deps holds the edges, by dependent (its key) and by dependency (task_deps_dep), with
    // `met` set once the dependency is settled (completed, failed or cancelled): each edge is
    // settled exactly once, which is what decrements pending_deps.
    sql: `
      CREATE TABLE tasks_rebuilt (
        seq              INTEGER PRIMARY KEY,
        id               TEXT    NOT NULL,
        action           TEXT    NOT NULL,
        data             TEXT    NOT NULL,
        status           TEXT    NOT NULL
                         CHECK (status IN ('blocked', 'queued', 'running', 'completed', 'failed', 'cancelled')),
        ${COLUMNS_AFTER_STATUS_0001},
        claimed_at       INTEGER,
        traceparent      TEXT,
        tracestate       TEXT,
        concurrency_key  TEXT,
        parent_id        TEXT,
        pending_deps     INTEGER NOT NULL DEFAULT 0,
        has_dependents   INTEGER NOT NULL DEFAULT 0,
        dep_failure_runs INTEGER NOT NULL DEFAULT 0,
        waits            INTEGER NOT NULL DEFAULT 0
      );
      INSERT INTO tasks_rebuilt (seq, id, action, data, status, priority, run_at, attempts, max_attempts,
                                 result, error, progress, progress_message, unique_key, unique_until,
                                 lease_owner, lease_expires_at, cancel_requested, created_at, started_at,
                                 processed_at, claimed_at, traceparent, tracestate, concurrency_key)
      SELECT seq, id, action, data, status, priority, run_at, attempts, max_attempts,
             result, error, progress, progress_message, unique_key, unique_until,
             lease_owner, lease_expires_at, cancel_requested, created_at, started_at,
             processed_at, claimed_at, traceparent, tracestate, concurrency_key
        FROM tasks;
      ${REPLACE_TASKS_0003}
      CREATE INDEX tasks_claimable_key ON tasks (action, concurrency_key, priority DESC, run_at, seq)
        WHERE status = 'queued';
      CREATE INDEX tasks_running_key ON tasks (action, concurrency_key)
        WHERE status = 'running' AND concurrency_key IS NOT NULL;
      CREATE INDEX tasks_parent ON tasks (parent_id, seq) WHERE parent_id IS NOT NULL;

      ALTER TABLE task_counts ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
      ${countTriggers(STATUSES_0008)}

      CREATE TABLE task_deps (
        task_seq INTEGER NOT NULL, -- the dependent
        dep_seq  INTEGER NOT NULL, -- its dependency
        met      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_seq, dep_seq)
      ) WITHOUT ROWID;
      CREATE INDEX task_deps_dep ON task_deps (dep_seq, task_seq);
      -- pruned tasks take their edges with them
      CREATE TRIGGER tasks_deps_delete AFTER DELETE ON tasks BEGIN
        DELETE FROM task_deps WHERE task_seq = old.seq;
        DELETE FROM task_deps WHERE dep_seq = old.seq;
      END;
    `,
  },
  {
    version: 9,
    name: '0009_attempt_history_nodes',
    // Attempt history (docs/api.md): a JSON array of the task's finished attempts, oldest first,
    // appended by the very statement that ends an attempt (ack, nack, rescue), so keeping it adds
    // no statement and no row per task; NULL until an attempt ends. The driver bounds it.
    // taskq_nodes: one row per process (api, worker or both), upserted by its heartbeat; rows of
    // nodes gone for an hour are deleted by every heartbeat, so the table holds the nodes of the
    // last hour and is read whole. tasks holds the ids the node runs now (a JSON array, bounded).
    sql: `
      ALTER TABLE tasks ADD COLUMN attempt_history TEXT;
      CREATE TABLE taskq_nodes (
        id           TEXT    PRIMARY KEY, -- the node id, also the lease owner of the tasks it runs
        host         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        role         TEXT    NOT NULL,    -- all | api | worker
        version      TEXT    NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        heartbeat_ms INTEGER NOT NULL,    -- its heartbeat period: missing three means gone
        concurrency  INTEGER NOT NULL,    -- 0 on an API-only node
        running      INTEGER NOT NULL,    -- handlers running now
        buffered     INTEGER NOT NULL,    -- claimed, waiting in its memory
        tasks        TEXT    NOT NULL,    -- JSON array of the running tasks' ids
        stopped_at   INTEGER              -- set by a graceful stop
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 10,
    name: '0010_bulk_operations',
    // Filters and bulk operations (core/filter.ts, docs/operations.md). The failed and cancelled
    // tasks of one action, newest first, are a range of a partial index each, so "retry the
    // failed send-email tasks" and its listing read only those rows. They are partial: a task
    // enters one only when it fails or is cancelled, so claims and acks of tasks that complete
    // write neither. A bulk operation is one row of taskq_operations, worked in steps under a
    // lease with a cursor (shared/bulk-step.ts); a running operation's request key is unique,
    // so the same request while it runs finds it, and so is an Idempotency-Key.
    sql: `
      CREATE INDEX tasks_failed_action ON tasks (action, seq) WHERE status = 'failed';
      CREATE INDEX tasks_cancelled_action ON tasks (action, seq) WHERE status = 'cancelled';
      CREATE TABLE taskq_operations (
        id               TEXT    PRIMARY KEY,
        op               TEXT    NOT NULL CHECK (op IN ('retry', 'cancel', 'delete')),
        filter           TEXT    NOT NULL,           -- JSON object of the filter grammar's pairs
        request_key      TEXT    NOT NULL,           -- op and canonical filter
        idempotency_key  TEXT,
        created_by       TEXT,
        status           TEXT    NOT NULL CHECK (status IN ('running', 'completed')),
        matched          INTEGER NOT NULL,
        matched_exact    INTEGER NOT NULL,
        done             INTEGER NOT NULL DEFAULT 0,
        skipped          INTEGER NOT NULL DEFAULT 0,
        errors           INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        max_seq          INTEGER NOT NULL,           -- tasks above it came later: not included
        cursor           INTEGER,                    -- the next step reads below it
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        finished_at      INTEGER
      ) WITHOUT ROWID;
      CREATE UNIQUE INDEX taskq_operations_request ON taskq_operations (request_key) WHERE status = 'running';
      CREATE UNIQUE INDEX taskq_operations_idempotency ON taskq_operations (idempotency_key)
        WHERE idempotency_key IS NOT NULL;
      CREATE INDEX taskq_operations_lease ON taskq_operations (lease_expires_at) WHERE status = 'running';
    `,
  },
  {
    version: 11,
    name: '0011_actions_console',
    // The operator's console (docs/operations.md). taskq_paused_actions holds the actions no claim
    // may take (every claim statement leaves them out, so the database orders a claim and a pause);
    // an empty table costs the claim one probe of an empty index. taskq_schedules keeps each
    // schedule's pause and last run across restarts and nodes. task_action_minutes is the
    // per-action ring of finishes and run-time buckets (core/actions.ts), kept by a trigger beside
    // migration 0004's, so GET /actions reads at most 60 rows per action. tasks_queued_action finds
    // each action's oldest queued task in one seek (the other indexes hold it behind finished
    // tasks or other keys); it is partial, so tasks leave it when claimed. The ring is filled
    // from the last hour's finishes, under the write lock.
    sql: `
      CREATE TABLE taskq_paused_actions (
        action    TEXT    PRIMARY KEY,
        paused_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE taskq_schedules (
        name         TEXT PRIMARY KEY,
        paused_at    INTEGER,          -- NULL: not paused
        last_run_at  INTEGER,          -- the tick (or run-now) last queued
        last_task_id TEXT
      ) WITHOUT ROWID;
      CREATE INDEX tasks_queued_action ON tasks (action, seq) WHERE status = 'queued';
      CREATE TABLE task_action_minutes (
        action    TEXT    NOT NULL,
        slot      INTEGER NOT NULL,    -- (minute / 60000) % ${ACTION_RING_MINUTES}
        minute    INTEGER NOT NULL,    -- start of the minute, epoch ms
        ${ACTION_RING_COLUMNS.map((c) => `${c} INTEGER NOT NULL`).join(',\n        ')},
        PRIMARY KEY (action, slot)
      ) WITHOUT ROWID;
      INSERT INTO task_action_minutes (action, slot, minute, ${ACTION_RING_COLUMNS.join(', ')})
      SELECT action, (m / 60000) % ${ACTION_RING_MINUTES}, m, sum(status = 'completed'), sum(status = 'failed'),
             ${runBucketFlags('run')
               .map((f) => `sum(${f})`)
               .join(', ')}
        FROM (SELECT action, status, (processed_at / 60000) * 60000 AS m, processed_at - started_at AS run
                FROM tasks, (SELECT CAST(unixepoch() / 60 AS INTEGER) * 60000 AS at) c
               WHERE status IN ('completed', 'failed')
                 AND processed_at >= c.at - ${ACTION_RING_MINUTES - 1} * 60000 AND processed_at < c.at + 60000)
       GROUP BY action, m;
      -- OF processed_at, not OF status: every finishing statement sets processed_at and a claim
      -- never does, so claims do not even code this trigger (a row trigger's WHEN runs inside
      -- its program, whose frame costs a claim dearly when the body is this wide).
      CREATE TRIGGER tasks_action_minutes_update AFTER UPDATE OF processed_at ON tasks
        WHEN new.status IN ('completed', 'failed') AND old.status <> new.status
         AND new.processed_at IS NOT NULL BEGIN
        ${COUNT_ACTION_FINISH_OF_NEW}
      END;
    `,
  },
  {
    version: 12,
    name: '0012_audit_log',
    // The audit log of operator actions (queue/audit.ts, docs/security.md): appended once per
    // operator call, read newest first by seq, by token, action or both (an index each, so a
    // filtered page reads only its rows), and pruned by time (taskq_audit_log_at). AUTOINCREMENT: a seq is
    // never reused after the newest entries are pruned, so a cursor never skips a later entry.
    sql: `
      CREATE TABLE taskq_audit_log (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        token  TEXT,                 -- the token's name; NULL without tokens
        method TEXT    NOT NULL,
        route  TEXT    NOT NULL,     -- the route's pattern, /tasks/:id/retry
        action TEXT    NOT NULL,     -- tasks.retry, bulk.delete, ...
        target TEXT,                 -- task id, action, schedule or operation id
        detail TEXT,                 -- JSON object: a bulk operation's filter, matched, dry_run
        status INTEGER NOT NULL      -- the HTTP status answered
      );
      CREATE INDEX taskq_audit_log_token ON taskq_audit_log (token, seq);
      CREATE INDEX taskq_audit_log_action ON taskq_audit_log (action, seq);
      CREATE INDEX taskq_audit_log_token_action ON taskq_audit_log (token, action, seq);
      CREATE INDEX taskq_audit_log_at ON taskq_audit_log (at);
    `,
  },
];
