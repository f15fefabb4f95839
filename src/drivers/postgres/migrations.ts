/**
 * PostgreSQL schema, forward-only, numbered like the SQLite migrations (shared/migrator.ts runs it). `migrate()` runs them all
 * in one transaction that first takes an advisory lock on the schema, so ten nodes starting at
 * once apply each migration exactly once (the others wait, then find the versions recorded).
 * Times are epoch milliseconds in bigint columns, like SQLite's integers, so both drivers agree.
 * No statement names a schema: the pool's search_path selects it.
 *
 * JSON columns are `json`, not `jsonb`: nothing queries inside them, and `json` stores the text as
 * given, like SQLite. jsonb would refuse a "\u0000" escape, and one handler result holding it
 * would fail the Completer's whole batch on every retry.
 */
import { ACTION_RING_MINUTES, RUN_BUCKET_COLUMNS, RUN_MS_BUCKETS } from '../../core/actions.js';
import type { Migration } from '../shared/migrator.js';

/** Shards of the per-action ring (migration 0011): as task_counts', fewer, since readers sum them. */
export const ACTION_RING_SHARDS = 16;

/**
 * Per run-time bucket, a count of the rows of `from` (finished rows) whose `run` (ms, NULL for an
 * attempt that never started) falls in it.
 */
export function runBucketCounts(run: string): string[] {
  return RUN_BUCKET_COLUMNS.map((_, i) => {
    const lo = i === 0 ? null : RUN_MS_BUCKETS[i - 1];
    const hi = RUN_MS_BUCKETS[i];
    const parts = [lo === null ? null : `${run} > ${lo}`, hi === undefined ? null : `${run} <= ${hi}`];
    return `count(*) FILTER (WHERE ${parts.filter((p) => p !== null).join(' AND ')})`;
  });
}
export const ACTION_RING_COLUMNS = ['completed', 'failed', ...RUN_BUCKET_COLUMNS];

/** Taken before anything else; $1 is the schema name, so each schema migrates independently. */
export const MIGRATION_LOCK = `SELECT pg_advisory_xact_lock(hashtext('taskq:migrate:' || $1))`;

/** The schema itself; `schema` is checked to be a plain lower-case identifier before it gets here. */
export const createSchemaSql = (schema: string) => `CREATE SCHEMA IF NOT EXISTS "${schema}"`;

export const MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS taskq_migrations (
    version    integer PRIMARY KEY,
    name       text    NOT NULL,
    applied_at bigint  NOT NULL
  )`;
export const IS_APPLIED = `SELECT 1 FROM taskq_migrations WHERE version = $1`;
export const RECORD_APPLIED = `INSERT INTO taskq_migrations (version, name, applied_at) VALUES ($1, $2, $3)`;
export const CURRENT_VERSION = `SELECT max(version) AS v FROM taskq_migrations`;

/** The statuses task_counts has a column for: 0003's five, and `blocked` from 0008. */
const STATUSES_0003 = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const STATUSES_0008 = ['blocked', ...STATUSES_0003];

/**
 * The statement trigger function that lowers the counters when tasks are deleted (pruning), for
 * the counter columns of `statuses`, followed by `more` (0008 also deletes the tasks' edges).
 */
function statsDeleteFunction(create: string, statuses: readonly string[], more: string): string {
  return `${create} FUNCTION taskq_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        INSERT INTO task_counts AS c (action, shard, ${statuses.join(', ')})
        SELECT action, pg_backend_pid() % 64,
               ${statuses.map((st) => `-count(*) FILTER (WHERE status = '${st}')`).join(',\n               ')}
          FROM o GROUP BY action ORDER BY action
        ON CONFLICT (action, shard) DO UPDATE SET
          ${statuses.map((st) => `${st} = c.${st} + excluded.${st}`).join(', ')};
        ${more}
        RETURN NULL;
      END
      $fn$;`;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: '0001_init',
    sql: `
      -- The columns and indexes of SQLite's 0001 (sqlite/migrations.ts says what each is for),
      -- in PostgreSQL types.
      CREATE TABLE tasks (
        seq              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id               text    NOT NULL UNIQUE,
        action           text    NOT NULL,
        data             json    NOT NULL,           -- kept as given (see the top of this file)
        status           text    NOT NULL
                         CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
        priority         integer NOT NULL DEFAULT 0,
        run_at           bigint  NOT NULL,
        attempts         integer NOT NULL DEFAULT 0,
        max_attempts     integer NOT NULL,
        result           json,
        error            text,
        progress         integer,
        progress_message text,
        unique_key       text,
        unique_until     bigint,
        lease_owner      text,
        lease_expires_at bigint,
        cancel_requested boolean NOT NULL DEFAULT false,
        created_at       bigint  NOT NULL,
        started_at       bigint,
        processed_at     bigint
      );
      CREATE INDEX tasks_claimable ON tasks (priority DESC, run_at, seq) WHERE status = 'queued';
      CREATE INDEX tasks_lease_owner ON tasks (lease_owner) WHERE status = 'running';
      CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE status = 'running';
      CREATE INDEX tasks_status_seq ON tasks (status, seq);
      CREATE INDEX tasks_action_seq ON tasks (action, seq);
      CREATE INDEX tasks_finished ON tasks (status, processed_at) WHERE processed_at IS NOT NULL;
      CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;
    `,
  },
  {
    version: 2,
    name: '0002_drop_lease_indexes',
    // Why: see SQLite's 0002 (an index write on every claim and ack, for few running rows).
    sql: `
      DROP INDEX IF EXISTS tasks_lease_owner;
      DROP INDEX IF EXISTS tasks_lease_expiry;
    `,
  },
  {
    version: 3,
    name: '0003_stats_counters',
    // The counters and the throughput ring of SQLite's 0004 (see there and docs/stats.md), kept
    // differently: every statement that changes a task's status updates the counters in the same
    // statement (queries.ts, COUNT_CHANGES): one grouped upsert, no trigger machinery on the hot
    // path; pruning does it in a statement trigger.
    // Counter rows are sharded by backend (pg_backend_pid() % 64; readers sum the shards), so
    // concurrent commits do not queue on one row lock through their WAL flush; a shard alone may
    // go negative. The ring has 1440 minutes per shard. The backfill runs under a lock that keeps
    // writers out until the migration commits.
    sql: `
      CREATE TABLE task_counts (
        action    text    NOT NULL,
        shard     integer NOT NULL,
        queued    bigint  NOT NULL,
        running   bigint  NOT NULL,
        completed bigint  NOT NULL,
        failed    bigint  NOT NULL,
        cancelled bigint  NOT NULL,
        PRIMARY KEY (action, shard)
      ) WITH (fillfactor = 50);
      CREATE TABLE task_throughput (
        slot      integer NOT NULL, -- (minute / 60000) % 1440
        shard     integer NOT NULL,
        minute    bigint  NOT NULL, -- start of the minute, epoch ms
        completed bigint  NOT NULL,
        failed    bigint  NOT NULL,
        PRIMARY KEY (slot, shard)
      ) WITH (fillfactor = 50);
      CREATE INDEX task_throughput_minute ON task_throughput (minute);

      -- Pruning (and any other delete) lowers the counts; the throughput of its minutes stays.
      ${statsDeleteFunction('CREATE', STATUSES_0003, '')}
      CREATE FUNCTION taskq_stats_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        DELETE FROM task_counts;
        RETURN NULL;
      END
      $fn$;
      CREATE TRIGGER tasks_stats_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS o
        FOR EACH STATEMENT EXECUTE FUNCTION taskq_stats_delete();
      CREATE TRIGGER tasks_stats_truncate AFTER TRUNCATE ON tasks
        FOR EACH STATEMENT EXECUTE FUNCTION taskq_stats_truncate();

      -- the one full count, as in SQLite's 0004
      LOCK TABLE tasks IN SHARE MODE;
      INSERT INTO task_counts (action, shard, queued, running, completed, failed, cancelled)
      SELECT action, 0,
             count(*) FILTER (WHERE status = 'queued'),
             count(*) FILTER (WHERE status = 'running'),
             count(*) FILTER (WHERE status = 'completed'),
             count(*) FILTER (WHERE status = 'failed'),
             count(*) FILTER (WHERE status = 'cancelled')
        FROM tasks GROUP BY action;
      INSERT INTO task_throughput (slot, shard, minute, completed, failed)
      SELECT (m / 60000) % 1440, 0, m,
             count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
        FROM (SELECT (processed_at / 60000) * 60000 AS m, status
                FROM tasks, (SELECT (floor(extract(epoch FROM now()) / 60) * 60000)::int8 AS at) c
               WHERE status IN ('completed', 'failed')
                 AND processed_at >= c.at - 1439 * 60000 AND processed_at < c.at + 60000) f
       GROUP BY m;
    `,
  },
  {
    version: 4,
    name: '0004_ids_from_seq',
    // Ids become the encryption of seq (src/drivers/task-ids.ts), so the unique index on id goes:
    // random uuids landed all over it, and every version of a row (insert, claim, ack) added an
    // entry on a page of its own. Older random ids stay findable through taskq_legacy_ids. The
    // key is written by the driver's migrate() right after (from a secure random source).
    sql: `
      CREATE TABLE taskq_meta (
        name  text  PRIMARY KEY,
        value bytea NOT NULL
      );
      CREATE TABLE taskq_legacy_ids (
        id  text   PRIMARY KEY,
        seq bigint NOT NULL
      );
      INSERT INTO taskq_legacy_ids (id, seq) SELECT id, seq FROM tasks;
      ALTER TABLE tasks DROP CONSTRAINT tasks_id_key;
    `,
  },
  {
    version: 5,
    name: '0005_claimed_at',
    // As SQLite's 0005: the claim's time gets a column of its own; started_at is the handler's start.
    sql: `
      ALTER TABLE tasks ADD COLUMN claimed_at bigint;
      UPDATE tasks SET claimed_at = started_at WHERE started_at IS NOT NULL;
    `,
  },
  {
    version: 6,
    name: '0006_trace_context',
    // As SQLite's 0006: the producer's W3C trace context, read with the row, never searched.
    sql: `
      ALTER TABLE tasks ADD COLUMN traceparent text;
      ALTER TABLE tasks ADD COLUMN tracestate text;
    `,
  },
  {
    version: 7,
    name: '0007_flow_control',
    // As SQLite's 0007 (the comment there says what each index serves). A bucket row is locked by
    // the claim that refills it, so claims of one rate-limited action take turns on it.
    sql: `
      ALTER TABLE tasks ADD COLUMN concurrency_key text;
      CREATE INDEX tasks_claimable_key ON tasks (action, concurrency_key, priority DESC, run_at, seq)
        WHERE status = 'queued';
      CREATE INDEX tasks_running_key ON tasks (action, concurrency_key)
        WHERE status = 'running' AND concurrency_key IS NOT NULL;
      CREATE TABLE taskq_rate_limits (
        action      text             PRIMARY KEY,
        tokens      double precision NOT NULL,
        refilled_at bigint           NOT NULL
      );
    `,
  },
  {
    version: 8,
    name: '0008_workflows',
    // As SQLite's 0008 (the comment there says what each column and table is for); PostgreSQL
    // changes the CHECK in place. taskq_settle_dependents settles the edges of tasks that just
    // finished, in rounds (a dependent failed by a dependency fails its own dependents next), and
    // returns the dependents it changed, so the calling statement counts them with its own rows.
    // It is VOLATILE: each of its statements takes a fresh snapshot, so it sees a dependent whose
    // insert committed while the calling statement waited for the dependency's row lock (the
    // insert locks its dependencies first), which the calling statement's own snapshot would miss.
    sql: `
      ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
      ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
        CHECK (status IN ('blocked', 'queued', 'running', 'completed', 'failed', 'cancelled'));
      ALTER TABLE tasks ADD COLUMN parent_id text;
      ALTER TABLE tasks ADD COLUMN pending_deps integer NOT NULL DEFAULT 0;
      ALTER TABLE tasks ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
      ALTER TABLE tasks ADD COLUMN dep_failure_runs boolean NOT NULL DEFAULT false;
      ALTER TABLE tasks ADD COLUMN waits integer NOT NULL DEFAULT 0;
      CREATE INDEX tasks_parent ON tasks (parent_id, seq) WHERE parent_id IS NOT NULL;
      ALTER TABLE task_counts ADD COLUMN blocked bigint NOT NULL DEFAULT 0;

      CREATE TABLE task_deps (
        task_seq bigint  NOT NULL,
        dep_seq  bigint  NOT NULL,
        met      boolean NOT NULL DEFAULT false,
        PRIMARY KEY (task_seq, dep_seq)
      );
      CREATE INDEX task_deps_dep ON task_deps (dep_seq, task_seq);

      ${statsDeleteFunction(
        'CREATE OR REPLACE',
        STATUSES_0008,
        `DELETE FROM task_deps WHERE task_seq IN (SELECT seq FROM o);
        DELETE FROM task_deps WHERE dep_seq IN (SELECT seq FROM o);`,
      )}

      CREATE FUNCTION taskq_settle_dependents(p_seqs int8[], p_ids text[], p_statuses text[],
                                              p_errors text[], p_now int8)
      RETURNS TABLE (seq int8, id text, action text, old_status text, status text, error text)
      LANGUAGE plpgsql VOLATILE AS $fn$
      #variable_conflict use_column
      DECLARE
        f_seqs int8[] := p_seqs;
        f_ids text[] := p_ids;
        f_statuses text[] := p_statuses;
        f_errors text[] := p_errors;
        n_seqs int8[];
        n_ids text[];
        n_statuses text[];
        n_errors text[];
        r record;
      BEGIN
        WHILE coalesce(cardinality(f_seqs), 0) > 0 LOOP
          n_seqs := '{}'; n_ids := '{}'; n_statuses := '{}'; n_errors := '{}';
          FOR r IN
            WITH f AS (
              SELECT * FROM unnest(f_seqs, f_ids, f_statuses, f_errors) AS f(seq, id, status, error)
            ), edges AS (
              UPDATE task_deps e SET met = true FROM f
               WHERE e.dep_seq = f.seq AND NOT e.met
              RETURNING e.task_seq, f.id AS dep_id, f.status AS dep_status, f.error AS dep_error
            ), per AS (
              SELECT task_seq, count(*)::int AS n,
                     (array_agg(dep_id ORDER BY dep_id) FILTER (WHERE dep_status <> 'completed'))[1] AS bad_id,
                     (array_agg(dep_status ORDER BY dep_id) FILTER (WHERE dep_status <> 'completed'))[1] AS bad_status,
                     (array_agg(dep_error ORDER BY dep_id) FILTER (WHERE dep_status <> 'completed'))[1] AS bad_error
                FROM edges GROUP BY task_seq
            ), old AS (
              SELECT t.seq, t.status FROM tasks t WHERE t.seq IN (SELECT task_seq FROM per)
               ORDER BY t.seq FOR UPDATE
            ), upd AS (
              UPDATE tasks t
                 SET pending_deps = t.pending_deps - per.n,
                     status = CASE WHEN old.status <> 'blocked' THEN t.status
                                   WHEN per.bad_id IS NOT NULL AND NOT t.dep_failure_runs
                                     THEN CASE WHEN per.bad_status = 'cancelled' THEN 'cancelled' ELSE 'failed' END
                                   WHEN t.pending_deps - per.n <= 0 THEN 'queued'
                                   ELSE 'blocked' END,
                     error = CASE WHEN old.status = 'blocked' AND per.bad_id IS NOT NULL AND NOT t.dep_failure_runs
                                  THEN 'dependency ' || per.bad_id ||
                                       CASE WHEN per.bad_status = 'cancelled' THEN ' was cancelled'
                                            ELSE ' failed: ' || coalesce(per.bad_error, '') END
                                  ELSE t.error END,
                     processed_at = CASE WHEN old.status = 'blocked' AND per.bad_id IS NOT NULL
                                              AND NOT t.dep_failure_runs THEN p_now
                                         ELSE t.processed_at END
                FROM per JOIN old ON old.seq = per.task_seq
               WHERE t.seq = per.task_seq
              RETURNING t.seq, t.id, t.action, old.status AS old_status, t.status, t.error
            )
            SELECT * FROM upd
          LOOP
            seq := r.seq; id := r.id; action := r.action; old_status := r.old_status;
            status := r.status; error := r.error;
            RETURN NEXT;
            IF r.old_status = 'blocked' AND r.status IN ('failed', 'cancelled') THEN
              n_seqs := n_seqs || r.seq; n_ids := n_ids || r.id;
              n_statuses := n_statuses || r.status; n_errors := n_errors || r.error;
            END IF;
          END LOOP;
          f_seqs := n_seqs; f_ids := n_ids; f_statuses := n_statuses; f_errors := n_errors;
        END LOOP;
      END
      $fn$;
    `,
  },
  {
    version: 9,
    name: '0009_attempt_history_nodes',
    // As SQLite's 0009 (the comment there says why the history is a column and how the nodes
    // table stays small). jsonb, so a statement can append to it and trim it.
    sql: `
      ALTER TABLE tasks ADD COLUMN attempt_history jsonb;
      CREATE TABLE taskq_nodes (
        id           text    PRIMARY KEY,
        host         text    NOT NULL,
        pid          integer NOT NULL,
        role         text    NOT NULL,
        version      text    NOT NULL,
        started_at   bigint  NOT NULL,
        heartbeat_at bigint  NOT NULL,
        heartbeat_ms integer NOT NULL,
        concurrency  integer NOT NULL,
        running      integer NOT NULL,
        buffered     integer NOT NULL,
        tasks        jsonb   NOT NULL,
        stopped_at   bigint
      );
    `,
  },
  {
    version: 10,
    name: '0010_bulk_operations',
    // As SQLite's 0010 (the comment there says what each index serves). The partial indexes get
    // an entry only from a row version that is failed or cancelled, so the claims and acks of
    // tasks that complete add none.
    sql: `
      CREATE INDEX tasks_failed_action ON tasks (action, seq) WHERE status = 'failed';
      CREATE INDEX tasks_cancelled_action ON tasks (action, seq) WHERE status = 'cancelled';
      CREATE TABLE taskq_operations (
        id               text    PRIMARY KEY,
        op               text    NOT NULL CHECK (op IN ('retry', 'cancel', 'delete')),
        filter           text    NOT NULL,
        request_key      text    NOT NULL,
        idempotency_key  text,
        created_by       text,
        status           text    NOT NULL CHECK (status IN ('running', 'completed')),
        matched          bigint  NOT NULL,
        matched_exact    boolean NOT NULL,
        done             bigint  NOT NULL DEFAULT 0,
        skipped          bigint  NOT NULL DEFAULT 0,
        errors           integer NOT NULL DEFAULT 0,
        last_error       text,
        max_seq          bigint  NOT NULL,
        cursor           bigint,
        lease_owner      text,
        lease_expires_at bigint,
        created_at       bigint  NOT NULL,
        updated_at       bigint  NOT NULL,
        finished_at      bigint
      );
      CREATE UNIQUE INDEX taskq_operations_request ON taskq_operations (request_key) WHERE status = 'running';
      CREATE UNIQUE INDEX taskq_operations_idempotency ON taskq_operations (idempotency_key)
        WHERE idempotency_key IS NOT NULL;
      CREATE INDEX taskq_operations_lease ON taskq_operations (lease_expires_at) WHERE status = 'running';
    `,
  },
  {
    version: 11,
    name: '0011_actions_console',
    // As SQLite's 0011 (the comment there says what each table and the index serve). The ring is
    // kept by the finishing statements themselves (queries.ts, COUNT_ACTION_FINISHES), beside
    // the throughput ring, sharded by backend like it.
    sql: `
      CREATE TABLE taskq_paused_actions (
        action    text   PRIMARY KEY,
        paused_at bigint NOT NULL
      );
      CREATE TABLE taskq_schedules (
        name         text PRIMARY KEY,
        paused_at    bigint,
        last_run_at  bigint,
        last_task_id text
      );
      CREATE INDEX tasks_queued_action ON tasks (action, seq) WHERE status = 'queued';
      CREATE TABLE task_action_minutes (
        action text    NOT NULL,
        slot   integer NOT NULL, -- (minute / 60000) % ${ACTION_RING_MINUTES}
        shard  integer NOT NULL,
        minute bigint  NOT NULL,
        ${ACTION_RING_COLUMNS.map((c) => `${c} bigint NOT NULL`).join(',\n        ')},
        PRIMARY KEY (action, slot, shard)
      ) WITH (fillfactor = 50);
      LOCK TABLE tasks IN SHARE MODE;
      INSERT INTO task_action_minutes (action, slot, shard, minute, ${ACTION_RING_COLUMNS.join(', ')})
      SELECT action, ((m / 60000) % ${ACTION_RING_MINUTES})::int, 0, m,
             count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
             ${runBucketCounts('run').join(', ')}
        FROM (SELECT action, status, (processed_at / 60000) * 60000 AS m, processed_at - started_at AS run
                FROM tasks, (SELECT (floor(extract(epoch FROM now()) / 60) * 60000)::int8 AS at) c
               WHERE status IN ('completed', 'failed')
                 AND processed_at >= c.at - ${ACTION_RING_MINUTES - 1} * 60000 AND processed_at < c.at + 60000) f
       GROUP BY action, m;
    `,
  },
  {
    version: 12,
    name: '0012_audit_log',
    // As SQLite's 0012 (the comment there says what the table and each index serve).
    sql: `
      CREATE TABLE taskq_audit_log (
        seq    bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at     bigint  NOT NULL,
        token  text,
        method text    NOT NULL,
        route  text    NOT NULL,
        action text    NOT NULL,
        target text,
        detail jsonb,
        status integer NOT NULL
      );
      CREATE INDEX taskq_audit_log_token ON taskq_audit_log (token, seq);
      CREATE INDEX taskq_audit_log_action ON taskq_audit_log (action, seq);
      CREATE INDEX taskq_audit_log_token_action ON taskq_audit_log (token, action, seq);
      CREATE INDEX taskq_audit_log_at ON taskq_audit_log (at);
    `,
  },
  {
    version: 13,
    name: '0013_implied_completion',
    // PostgreSQL only: the node of a task that completed with an empty attempt history, whose one
    // entry readers derive from the row (queries.ts, IMPLIED_COMPLETION says why). A column
    // without a default: adding it rewrites nothing.
    sql: `
      ALTER TABLE tasks ADD COLUMN completed_by text;
    `,
  },
  {
    version: 14,
    name: '0014_one_key_index',
    // PostgreSQL only: one index on (status, action, seq) in place of tasks_status_seq,
    // tasks_action_seq and the per-status (action, seq) indexes. Why: a status change is never a
    // HOT update, so every row version a task goes through (insert, claim, ack) got an entry in
    // each of them; with one index it gets one, about 10 % of the server's CPU per task
    // (docs/benchmarks.md). A walk by status alone now merges the walks of each action, and one
    // by action alone those of each status (shared/list-filter.ts keyIndex; queries.ts
    // LIST_DIALECT), each a seek that stops at the page's limit. The status leads: it is always
    // an equality, and the action is written as a range (queries.ts SEEK_EQUAL), which fixes the
    // start of a B-tree scan only in the last column it constrains.
    sql: `
      CREATE INDEX tasks_status_action_seq ON tasks (status, action, seq);
      DROP INDEX tasks_status_seq, tasks_action_seq, tasks_queued_action, tasks_failed_action,
                 tasks_cancelled_action;
    `,
  },
];
