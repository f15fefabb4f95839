/**
 * SQLite schema, forward-only (shared/migrator.ts runs it). Each migration runs in its own
 * IMMEDIATE transaction that first records its version, so two processes starting at once apply
 * it exactly once (the second waits for the write lock, then sees the version and skips). Times
 * are epoch milliseconds. What the schema both drivers share is for (columns, indexes, counters)
 * is explained here once; postgres/migrations.ts points back to these comments.
 */
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
];
