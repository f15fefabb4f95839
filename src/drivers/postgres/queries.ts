/**
 * Every PostgreSQL statement of the driver, under the same names as the SQLite driver's
 * (src/drivers/sqlite/queries.ts). Where SQLite loops over a batch, these take arrays and write
 * the whole batch in one statement (`unnest`), since the Completer and the insert Batcher already
 * coalesce calls. Parameters are positional; the comment above each lists them. No statement
 * names a schema: the pool's search_path selects it. The driver runs each as a named (prepared)
 * statement, so PostgreSQL parses and plans it once per connection rather than on every call.
 */
import { ACTION_RING_MINUTES } from '../../core/actions.js';
import {
  ATTEMPT_ERROR_MAX,
  ATTEMPT_STACK_MAX,
  BULK_STATUSES,
  RETRYABLE_STATUSES,
  TASK_STATUSES,
} from '../../core/task.js';
import { ACTION_RING_COLUMNS, ACTION_RING_SHARDS, runBucketCounts } from './migrations.js';
import type { DialectCondition, ListDialect } from '../shared/list-filter.js';
import { statusList } from '../shared/status-list.js';

/**
 * Session settings, sent as the connection's startup `options`:
 * - `search_path`: every statement resolves its tables in `schema` (a checked identifier), so no
 *   statement names one.
 * - `enable_seqscan = off`: no sequential scan where an index applies. Every statement here is
 *   meant to read through an index (its cost must not grow with the table), so a sequential scan
 *   is only ever a misplan, and a lasting one: a connection keeps a statement's generic plan, and
 *   one made while the table was empty (a worker started on a new queue) scans it. Found in the
 *   scaling bench: claims and acks planned on the empty table scanned all of it on every call as
 *   it filled, 727 µs of server CPU per task against 261 with this setting. It only prices such
 *   scans out: a small table with no usable index (the nodes, the paused actions) is still
 *   scanned, at a price of 10^10.
 * - `jit = off`: that price is far above `jit_above_cost`, so with JIT on, PostgreSQL compiled
 *   such a statement on every execution: 85 ms of server CPU for each node heartbeat (its DELETE
 *   scans taskq_nodes). Statements here touch a handful of rows; compiling never pays for them.
 */
export const sessionOptions = (schema: string) => `-c search_path=${schema} -c enable_seqscan=off -c jit=off`;
/**
 * Added for the relaxed pool: its commits do not wait for the WAL flush (postgres-driver.ts says
 * why); and its statements (claims, lease renewals, announcements) are planned generic from their
 * first execution, as they are after their fifth anyway, rather than custom-planned five times on
 * every new connection first (a claim's plan has several branches; planning the acks' statement
 * for 1,000 rows took 0.9 ms).
 */
export const RELAXED_SESSION_OPTIONS = '-c synchronous_commit=off -c plan_cache_mode=force_generic_plan';

/**
 * The stats counters (migration 0003, docs/stats.md) are kept by the statements that change a
 * task's status, as the tail of a WITH: `changed` is the CTE of the rows the statement changed,
 * with their `action`, `old_status` (what the statement's WHERE guarantees it was: a constant in
 * most statements) and new `status`. One grouped upsert per statement, however many rows it
 * changed; rows whose status did not change count nothing.
 */
const COUNT_CHANGES = `
  counted AS (
    INSERT INTO task_counts AS k (action, shard, blocked, queued, running, completed, failed, cancelled)
    SELECT action, pg_backend_pid() % 64,
           count(*) FILTER (WHERE status = 'blocked') - count(*) FILTER (WHERE old_status = 'blocked'),
           count(*) FILTER (WHERE status = 'queued') - count(*) FILTER (WHERE old_status = 'queued'),
           count(*) FILTER (WHERE status = 'running') - count(*) FILTER (WHERE old_status = 'running'),
           count(*) FILTER (WHERE status = 'completed') - count(*) FILTER (WHERE old_status = 'completed'),
           count(*) FILTER (WHERE status = 'failed') - count(*) FILTER (WHERE old_status = 'failed'),
           count(*) FILTER (WHERE status = 'cancelled') - count(*) FILTER (WHERE old_status = 'cancelled')
      FROM changed WHERE status IS DISTINCT FROM old_status
     GROUP BY action ORDER BY action
    ON CONFLICT (action, shard) DO UPDATE SET
      blocked = k.blocked + excluded.blocked,
      queued = k.queued + excluded.queued, running = k.running + excluded.running,
      completed = k.completed + excluded.completed, failed = k.failed + excluded.failed,
      cancelled = k.cancelled + excluded.cancelled)`;

/** Finishes (into completed or failed) also count in their minute of the throughput ring. */
const COUNT_FINISHES = (now: string) => `
  rolled AS (
    INSERT INTO task_throughput AS r (slot, shard, minute, completed, failed)
    SELECT ((${now} / 60000) % 1440)::int, pg_backend_pid() % 64, (${now} / 60000) * 60000,
           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
      FROM changed HAVING count(*) FILTER (WHERE status IN ('completed', 'failed')) > 0
    ON CONFLICT (slot, shard) DO UPDATE SET
      completed = CASE WHEN r.minute = excluded.minute THEN r.completed + excluded.completed
                       WHEN r.minute < excluded.minute THEN excluded.completed ELSE r.completed END,
      failed    = CASE WHEN r.minute = excluded.minute THEN r.failed + excluded.failed
                       WHEN r.minute < excluded.minute THEN excluded.failed ELSE r.failed END,
      minute    = greatest(r.minute, excluded.minute))`;

/**
 * The dependents of the rows of CTE `done` that have dependents (has_dependents), settled by
 * taskq_settle_dependents (migration 0008): queued when their last dependency completed, failed
 * or cancelled with a failed or cancelled one. Nothing is called when no row has dependents.
 * `now` is the statement's time parameter.
 */
const SETTLE_DONE = (now: string) => `
  settled AS (
    SELECT s.* FROM (SELECT array_agg(seq) AS seqs, array_agg(id) AS ids, array_agg(status) AS statuses,
                            array_agg(error) AS errors
                       FROM done WHERE has_dependents AND status IN ('completed', 'failed', 'cancelled')
                     HAVING count(*) > 0) d
     CROSS JOIN LATERAL taskq_settle_dependents(d.seqs, d.ids, d.statuses, d.errors, ${now}) s
  ), changed AS (
    SELECT seq, action, old_status, status, started_at FROM done
    UNION ALL SELECT seq, action, old_status, status, NULL::int8 FROM settled
  )`;

/** The rows of `done` and then the dependents settled with them (`dependent` true). */
const DONE_AND_SETTLED = `
    SELECT seq, id, status, false AS dependent FROM done
    UNION ALL SELECT seq, id, status, true FROM settled`;

/**
 * Finishes also count in their action's minute of the per-action ring (migration 0011), with
 * their run time (`now - started_at`) in its bucket: one grouped upsert per statement. `changed`
 * must carry `started_at`.
 */
const COUNT_ACTION_FINISHES = (now: string) => `
  action_rolled AS (
    INSERT INTO task_action_minutes AS r (action, slot, shard, minute, ${ACTION_RING_COLUMNS.join(', ')})
    SELECT action, ((${now} / 60000) % ${ACTION_RING_MINUTES})::int, pg_backend_pid() % ${ACTION_RING_SHARDS},
           (${now} / 60000) * 60000,
           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
           ${runBucketCounts(`(${now} - started_at)`).join(', ')}
      FROM changed WHERE status IN ('completed', 'failed')
     GROUP BY action ORDER BY action
    ON CONFLICT (action, slot, shard) DO UPDATE SET
      ${ACTION_RING_COLUMNS.map(
        (c) => `${c} = CASE WHEN r.minute = excluded.minute THEN r.${c} + excluded.${c}
                     WHEN r.minute < excluded.minute THEN excluded.${c} ELSE r.${c} END`,
      ).join(',\n      ')},
      minute = greatest(r.minute, excluded.minute))`;

/**
 * `action` as claim filters compare it: through coalesce (a no-op, the column is NOT NULL), so
 * the planner does not estimate `action <> ALL(array)` from the column's statistics. With an
 * array it cannot see (an InitPlan, or a parameter in a generic plan) it assumes some of the
 * table's own actions are in it: with one action in the table the condition looks like it keeps
 * no row, and the claim became a sequential scan and sort of the whole table (8 ms at 20,000
 * tasks, growing with the table) instead of a walk down tasks_claimable. Without statistics the
 * estimate is that most rows pass, which is the usual truth for a list of skipped actions.
 */
const ACTION_UNESTIMATED = (column: string) => `coalesce(${column}, '')`;

/**
 * What every claim statement adds to what is claimable: no paused action (migration 0011). The
 * array is an InitPlan, read once per statement; with nothing paused it is empty. The column
 * goes through ACTION_UNESTIMATED (above) for the reason said there.
 */
const NOT_PAUSED = (column = 'action') =>
  `${ACTION_UNESTIMATED(column)} <> ALL(ARRAY(SELECT action FROM taskq_paused_actions))`;

/**
 * `column = value` written as a range, for a seek at the head of an index on `(column, seq)`,
 * ordered `BY column, seq`: only that index gives the order. Written `column = value ORDER BY seq`,
 * the planner may walk tasks_pkey and filter instead, which statistics taken while most tasks
 * were queued (the table filled, then drained) make look cheapest: the stats' oldest-queued seek
 * then read every finished task, 0.5-1.4 s at 1,000,000 of them (measured, PostgreSQL 15),
 * against 10 ms through the index (under 1 ms after VACUUM).
 */
const SEEK_EQUAL = (column: string, value: string) => `${column} >= ${value} AND ${column} <= ${value}`;

/**
 * Per action with queued tasks (the counters say which), its oldest queued task's seq and
 * creation time (`t`): one seek at the head of its queued range of tasks_status_action_seq.
 */
const OLDEST_QUEUED = `
    SELECT c.action, h.seq, h.created_at AS t
      FROM (SELECT action FROM task_counts GROUP BY action HAVING sum(queued) > 0) c
      LEFT JOIN LATERAL (SELECT seq, created_at FROM tasks
                          WHERE status = 'queued' AND ${SEEK_EQUAL('action', 'c.action')}
                          ORDER BY status, action, seq LIMIT 1) h ON true`;

/**
 * The attempt ending now, as a jsonb object for its history, as in sqlite/queries.ts: `t` is
 * the table's alias (with its dot, or ''), and its columns are the row's values before the UPDATE.
 */
const attemptEntry = (e: {
  t: string;
  outcome: string;
  error: string;
  stack: string;
  startedAt: string;
  now: string;
}) =>
  `jsonb_build_object('attempt', ${e.t}attempts, 'node', ${e.t}lease_owner, 'claimed_at', ${e.t}claimed_at,
                      'started_at', ${e.startedAt}, 'finished_at', ${e.now}, 'outcome', (${e.outcome})::text,
                      'error', left(${e.error}, ${ATTEMPT_ERROR_MAX}), 'stack', left(${e.stack}, ${ATTEMPT_STACK_MAX}))`;

/**
 * attempt_history with `entry` appended, keeping the newest `max` (a parameter), in the statement
 * that ends the attempt; below the bound (the common case) it is one concatenation.
 */
const appendAttempt = (t: string, entry: string, max: string) =>
  `attempt_history = ${appendedHistory(t, entry, max)}`;

/** The value of appendAttempt's assignment. */
const appendedHistory = (t: string, entry: string, max: string) => `
         CASE WHEN coalesce(jsonb_array_length(${t}attempt_history), 0) < ${max}
                THEN coalesce(${t}attempt_history, '[]'::jsonb) || jsonb_build_array(${entry})
              ELSE (SELECT jsonb_agg(a.v ORDER BY a.i)
                      FROM jsonb_array_elements(${t}attempt_history || jsonb_build_array(${entry}))
                           WITH ORDINALITY AS a(v, i)
                     WHERE a.i > jsonb_array_length(${t}attempt_history) + 1 - ${max})
         END`;

/**
 * The completing ack's history: `entry` is appended (as appendAttempt does) only to a history
 * that already has one; a task completing with an empty history keeps the node in `completed_by`
 * instead, and readers derive its one entry from the row (shared/task-row.ts, historyOf). Every
 * other field of that entry is a column the row keeps: attempts, claimed_at, started_at,
 * processed_at (the entry's finished_at). Why: building and storing the entry was about a fifth of
 * an ack's server CPU per row (docs/benchmarks.md), for the commonest task of all, one that
 * succeeds on its first try. A completed task is final, so no later statement appends to that
 * history. With `max` 0 (no history) nothing is kept.
 */
const IMPLIED_COMPLETION = (entry: string, max: string) => `attempt_history =
         CASE WHEN t.attempt_history IS NULL THEN NULL ELSE ${appendedHistory('t.', entry, max)} END,
         completed_by = CASE WHEN t.attempt_history IS NULL AND ${max} > 0 THEN t.lease_owner END`;

/** What the rescuer leaves as the task's error. */
const LEASE_EXPIRED_ERROR = `'lease expired: the worker running it stopped renewing (attempt ' || attempts || ')'`;

/** Every column but attempt_history: listings do not carry it (GET /tasks/:id does). */
const LISTED_COLUMNS = `seq, id, action, data, status, priority, run_at, attempts, max_attempts, result, error,
       progress, progress_message, unique_key, unique_until, concurrency_key, lease_owner, lease_expires_at,
       cancel_requested, created_at, claimed_at, started_at, processed_at, traceparent, tracestate,
       parent_id, pending_deps, has_dependents, dep_failure_runs, waits`;

/** What a claim returns: the columns it did not set itself. */
const CLAIMED_COLUMNS = `seq, id, action, data, priority, run_at, attempts, max_attempts, error, unique_key,
              concurrency_key, cancel_requested, created_at, traceparent, tracestate, parent_id, waits`;

/** The claim's update for the rows `where` selects; $1: owner, $2: lease until, $3: now. */
const claimWhereSql = (where: string) => `
    WITH changed AS (
    UPDATE tasks
       SET status = 'running', attempts = attempts + 1, lease_owner = $1,
           lease_expires_at = $2, claimed_at = $3, started_at = NULL,
           progress = NULL, progress_message = NULL
     WHERE ${where}
    RETURNING ${CLAIMED_COLUMNS}, 'queued'::text AS old_status, status
    ), ${COUNT_CHANGES}
    SELECT ${CLAIMED_COLUMNS} FROM changed`;

/** What the candidate reads of a limited claim return (shared/flow-claim.ts). */
const CANDIDATE_COLUMNS = 'seq, action, concurrency_key, priority, run_at';

/**
 * A claim: the first `LIMIT limit` claimable tasks in claim order, with `filter` added to what is
 * claimable. $1: owner, $2: lease until, $3: now, $4: limit (when `limit` is '$4'; see
 * claimStatement). `started_at` stays NULL until the worker reports that the handler started.
 */
const claimSql = (filter: string, limit = '$4') =>
  claimWhereSql(`seq = ANY(ARRAY(SELECT seq FROM tasks
                            WHERE status = 'queued' AND run_at <= $3 AND ${NOT_PAUSED()}${filter}
                            ORDER BY priority DESC, run_at, seq
                            LIMIT ${limit}
                              FOR UPDATE SKIP LOCKED))`);

/**
 * A plain claim from the claim floor (claim-floor.ts) rather than the front of tasks_claimable:
 * the tasks of higher priority than the floor's from their front, then the floor's priority from
 * its run_at on, then lower priorities from their front. Append reads its branches in turn and
 * the LIMIT stops it, so rows are locked only as they are taken, in claim order. Parameters as
 * claimSql, then the floor's priority and run_at (after the limit when the limit is a parameter).
 */
const floorClaimSql = (limit: string, firstOwn: number) => {
  const [priority, runAt] = [`$${firstOwn}::int`, `$${firstOwn + 1}::int8`];
  const branch = (where: string) => `
                 SELECT seq FROM (SELECT seq FROM tasks
                                   WHERE status = 'queued' AND run_at <= $3 AND ${NOT_PAUSED()} AND ${where}
                                   ORDER BY priority DESC, run_at, seq
                                   LIMIT ${limit}
                                     FOR UPDATE SKIP LOCKED) b`;
  return claimWhereSql(`seq = ANY(ARRAY(SELECT seq FROM (${branch(`priority > ${priority}`)}
                 UNION ALL ${branch(`priority = ${priority} AND run_at >= ${runAt}`)}
                 UNION ALL ${branch(`priority < ${priority}`)}) u
                 LIMIT ${limit}))`);
};

/**
 * The plain claims, and what each adds to what is claimable, given the number of its first own
 * parameter (the one after the limit).
 */
const CLAIM_FILTERS = {
  claimTasks: () => '',
  claimTasksExceptActions: (n: number) => ` AND ${ACTION_UNESTIMATED('action')} <> ALL($${n}::text[])`,
} as const;
export type PlainClaim = keyof typeof CLAIM_FILTERS;

/**
 * The batch insert (TASK_SQL.insertTasks says what it takes), with `onKeyConflict` after its
 * rows: the arbiter clause when the batch has idempotency keys, else nothing. Why two: an INSERT
 * with ON CONFLICT inserts every row speculatively (a pre-check of the arbiter index, then a
 * confirming WAL record per row), about 2 µs of server CPU per task for batches with no key at all
 * (docs/benchmarks.md).
 */
const insertTasksSql = (onKeyConflict: string) => `
    WITH changed AS (
    INSERT INTO tasks (seq, id, action, data, status, priority, run_at, max_attempts, unique_key, unique_until,
                       created_at, concurrency_key, traceparent, tracestate,
                       attempts, lease_owner, lease_expires_at, claimed_at)
    OVERRIDING SYSTEM VALUE
    SELECT t.seq, t.id, t.action, t.data::json, CASE WHEN c.claimed THEN 'running' ELSE 'queued' END,
           t.priority, t.run_at, t.max_attempts, t.unique_key, t.unique_until, t.created_at,
           t.concurrency_key, t.traceparent, t.tracestate, c.claimed::int,
           CASE WHEN c.claimed THEN $15::text END, CASE WHEN c.claimed THEN $16::int8 END,
           CASE WHEN c.claimed THEN $17::int8 END
      FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int8[], $7::int[],
                  $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::bool[])
           WITH ORDINALITY AS t(seq, id, action, data, priority, run_at, max_attempts, unique_key,
                                unique_until, created_at, concurrency_key, traceparent, tracestate, take, n)
           CROSS JOIN LATERAL (SELECT t.take IS TRUE AND ${NOT_PAUSED('t.action')} AS claimed) c
     ORDER BY t.n
    ${onKeyConflict}
    RETURNING seq, action, NULL::text AS old_status, status
    ), ${COUNT_CHANGES}
    SELECT seq, status FROM changed`;

const TASK_SQL = {
  begin: `BEGIN`,
  commit: `COMMIT`,
  rollback: `ROLLBACK`,

  /**
   * $1: how many. Seqs for a batch about to be inserted, so the driver can give each task the id
   * that encodes its seq (task-ids.ts) in the insert itself. The sequence is looked up once, in
   * an InitPlan: called per row, pg_get_serial_sequence cost 8x the nextval itself.
   */
  allocateSeqs: `SELECT nextval((SELECT pg_get_serial_sequence('tasks', 'seq')::regclass)) AS seq
                   FROM generate_series(1, $1)`,
  /**
   * $1..$13: arrays of seq, id, action, data (JSON text), priority, run_at, max_attempts,
   * unique_key, unique_until, created_at, concurrency_key, traceparent, tracestate. $14: array of
   * whether a worker of this process takes the task as it is stored (NULL: none does), $15..$17:
   * that claim's owner, lease end and time (InsertTasksParams.claim): such a row is inserted as
   * the claim statement leaves one, unless its action is paused. Returns the seqs stored (a taken
   * key skips its row) and their status.
   */
  insertTasks: insertTasksSql('ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING'),
  /** insertTasks for a batch without idempotency keys: nothing can conflict. */
  insertUnkeyedTasks: insertTasksSql(''),
  // Dependencies and children (docs/workflows.md): inserts of tasks with dependencies or a
  // parent go task by task in one transaction; the plain batch above stays one statement.
  /**
   * $1: seqs of a new task's dependencies. Locks them in seq order (so two inserts never
   * deadlock), waiting for a completion in flight to commit, and marks them as having
   * dependents; returns each one's id, status and error as now committed.
   */
  lockDependencies: `
    WITH l AS (SELECT seq FROM tasks WHERE seq = ANY($1::int8[]) ORDER BY seq FOR UPDATE)
    UPDATE tasks t SET has_dependents = true FROM l WHERE t.seq = l.seq
    RETURNING t.seq, t.id, t.status, t.error`,
  /**
   * One task with its graph columns: $1..$13 as insertTasks (one value each), $14: status,
   * $15: parent id, $16: pending dependencies, $17: on failure run, $18: error, $19: processed_at.
   */
  insertGraphTask: `
    WITH changed AS (
    INSERT INTO tasks (seq, id, action, data, status, priority, run_at, max_attempts, unique_key, unique_until,
                       created_at, concurrency_key, traceparent, tracestate, parent_id, pending_deps,
                       dep_failure_runs, error, processed_at)
    OVERRIDING SYSTEM VALUE
    VALUES ($1, $2, $3, $4::json, $14, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16, $17, $18, $19)
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING seq, action, NULL::text AS old_status, status, NULL::int8 AS started_at
    ), ${COUNT_CHANGES}, ${COUNT_FINISHES('coalesce($19::int8, $10::int8)')},
    ${COUNT_ACTION_FINISHES('coalesce($19::int8, $10::int8)')}
    SELECT seq FROM changed`,
  /** $1: dependents' seqs, $2: dependencies' seqs, $3: whether each edge is settled already. */
  insertDeps: `
    INSERT INTO task_deps (task_seq, dep_seq, met)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::bool[]) ON CONFLICT DO NOTHING`,
  /** $1: seq, $2: limit. The task's dependencies (task_deps' key), in insertion order. */
  dependenciesOf: `
    SELECT t.id, t.action, t.status, t.pending_deps FROM task_deps e JOIN tasks t ON t.seq = e.dep_seq
     WHERE e.task_seq = $1 ORDER BY e.dep_seq LIMIT $2`,
  /** $1: seq, $2: limit. The tasks that depend on it (task_deps_dep). */
  dependentsOf: `
    SELECT t.id, t.action, t.status, t.pending_deps FROM task_deps e JOIN tasks t ON t.seq = e.task_seq
     WHERE e.dep_seq = $1 ORDER BY e.task_seq LIMIT $2`,
  /** $1: parent id, $2: limit. A graph's children: the node columns only (tasks_parent). */
  childNodesOf: `
    SELECT id, action, status, pending_deps FROM tasks WHERE parent_id = $1 ORDER BY seq LIMIT $2`,
  /**
   * $1: seq (or parent id), $2: cap. How many of each list a graph has, counted in the index up
   * to $2. Each is ordered as its index is: without it, where one task has most of the edges (a
   * fan-out of thousands), the generic plan estimated a large share of the table and scanned it.
   */
  countDependencies: `
    SELECT count(*)::int AS n FROM (SELECT 1 FROM task_deps WHERE task_seq = $1 ORDER BY dep_seq LIMIT $2) c`,
  countDependents: `
    SELECT count(*)::int AS n FROM (SELECT 1 FROM task_deps WHERE dep_seq = $1 ORDER BY task_seq LIMIT $2) c`,
  countChildren: `
    SELECT count(*)::int AS n FROM (SELECT 1 FROM tasks WHERE parent_id = $1 ORDER BY seq LIMIT $2) c`,
  /** $1: parent id, $2: limit. Its children, oldest first (tasks_parent). */
  childrenOf: `SELECT ${LISTED_COLUMNS} FROM tasks WHERE parent_id = $1 ORDER BY seq LIMIT $2`,
  /** $1: seq, $2: owner, $3: attempt. The running task, locked, if the lease is still this one. */
  lockLeased: `
    SELECT seq, id, dep_failure_runs FROM tasks
     WHERE seq = $1 AND lease_owner = $2 AND attempts = $3 FOR UPDATE`,
  /**
   * $1: parent id. Its children, locked: a child's completion in flight commits first (and is
   * seen), or waits for this transaction (and then sees its edges: see taskq_settle_dependents).
   */
  lockChildren: `SELECT seq, id, status, error FROM tasks WHERE parent_id = $1 ORDER BY seq FOR UPDATE`,
  /**
   * $1: a task's seq, $2: seqs. The first of $2 that depends on the task, directly or through
   * others: a wait on it would close a cycle. One index probe per dependent (task_deps_dep).
   */
  dependentAmong: `
    WITH RECURSIVE d(seq) AS (
      SELECT task_seq FROM task_deps WHERE dep_seq = $1
      UNION SELECT e.task_seq FROM task_deps e JOIN d ON e.dep_seq = d.seq)
    SELECT seq FROM d WHERE seq = ANY($2::int8[]) LIMIT 1`,
  /** $1: seqs. Marks tasks as having dependents (children a parent now waits for). */
  markDependents: `UPDATE tasks SET has_dependents = true WHERE seq = ANY($1::int8[])`,
  /**
   * $1: seq, $2: owner, $3: attempt, $4: new status (blocked, queued or failed), $5: pending
   * children, $6: error, $7: now. Ends the attempt of a handler that waits for its children: the
   * attempt is not counted (attempts - 1), the wait is (waits + 1).
   */
  waitForChildren: `
    WITH changed AS (
    UPDATE tasks
       SET status = $4, pending_deps = $5, waits = waits + 1,
           attempts = CASE WHEN $4 = 'failed' THEN attempts ELSE attempts - 1 END,
           error = $6, processed_at = CASE WHEN $4 = 'failed' THEN $7::int8 END,
           run_at = CASE WHEN $4 = 'queued' THEN $7::int8 ELSE run_at END,
           lease_owner = NULL, lease_expires_at = NULL, claimed_at = NULL, started_at = NULL
     WHERE seq = $1 AND lease_owner = $2 AND attempts = $3
    RETURNING seq, action, 'running'::text AS old_status, status, started_at
    ), ${COUNT_CHANGES}, ${COUNT_FINISHES('$7::int8')}, ${COUNT_ACTION_FINISHES('$7::int8')}
    SELECT seq FROM changed`,

  /** $1: unique keys. */
  findByUniqueKey: `SELECT * FROM tasks WHERE unique_key = ANY($1::text[])`,
  /** $1: unique keys, $2: now. Frees keys whose window has passed, so a new task can take them. */
  expireUniqueKey: `
    UPDATE tasks SET unique_key = NULL, unique_until = NULL
     WHERE unique_key = ANY($1::text[]) AND coalesce(unique_until, 0) <= $2`,

  /** $1: candidate seqs decoded from an id; the driver keeps the row whose stored id matches. */
  getTaskBySeq: `SELECT * FROM tasks WHERE seq = ANY($1::int8[])`,
  /** $1: id. Tasks from before migration 0004 have random ids: their seq is looked up instead. */
  getLegacyTask: `SELECT t.* FROM taskq_legacy_ids l JOIN tasks t ON t.seq = l.seq WHERE l.id = $1`,

  /** The secret key task ids are encrypted under (task-ids.ts); $1 a new key, kept if none is set. */
  setIdKey: `INSERT INTO taskq_meta (name, value) VALUES ('task_id_key', $1) ON CONFLICT (name) DO NOTHING`,
  readIdKey: `SELECT value FROM taskq_meta WHERE name = 'task_id_key'`,

  /**
   * $1: owner, $2: lease until, $3: now, $4: limit. Returns only the columns the claim did not
   * just set (the driver fills in the rest), so `result` and the other json never travel.
   * `seq = ANY(ARRAY(...))` rather than `seq IN (...)`: a prepared statement soon runs a generic
   * plan, and for `IN` that plan was a hash join over a scan of the whole table (it sizes
   * `LIMIT $4` as a tenth of the rows); ANY over an array can only be primary-key lookups.
   */
  claimTasks: claimSql(CLAIM_FILTERS.claimTasks()),
  /** The same, skipping actions at their per-action limit; $5: actions to skip. */
  claimTasksExceptActions: claimSql(CLAIM_FILTERS.claimTasksExceptActions(5)),

  // A claim under flow-control limits (shared/flow-claim.ts says what it decides), in one
  // READ COMMITTED transaction on the relaxed pool: candidates are read and row-locked (SKIP
  // LOCKED: claims never wait on each other's rows), then the chosen seqs are claimed. What
  // serialises the limits across nodes is said at each statement; the locks are taken in one
  // order (actions by name; per action its bucket, then its keys by hash), so claims never deadlock.
  /**
   * $1: limited actions. Whether any has queued tasks (one index seek each in tasks_claimable_key);
   * without any, the plain claim (leaving them out) does the work alone, in one round trip.
   */
  limitedQueued: `
    SELECT EXISTS (SELECT 1 FROM unnest($1::text[]) AS a(action)
                    WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.status = 'queued' AND t.action = a.action)
                      AND ${NOT_PAUSED('a.action')}) AS queued`,
  /** $1: now, $2: limit, $3: actions to leave out. The unlimited part: the head of the queue. */
  claimCandidatesExcept: `
    SELECT ${CANDIDATE_COLUMNS} FROM tasks
     WHERE status = 'queued' AND run_at <= $1 AND action <> ALL($3::text[]) AND ${NOT_PAUSED()}
     ORDER BY priority DESC, run_at, seq
     LIMIT $2
       FOR UPDATE SKIP LOCKED`,
  /** $1: action, $2: now, $3: limit. The ready tasks of the action without a key. */
  claimCandidatesUnkeyed: `
    SELECT ${CANDIDATE_COLUMNS} FROM tasks
     WHERE status = 'queued' AND action = $1 AND concurrency_key IS NULL AND run_at <= $2 AND ${NOT_PAUSED()}
     ORDER BY priority DESC, run_at, seq
     LIMIT $3
       FOR UPDATE SKIP LOCKED`,
  /**
   * $1: action, $2: after this key, $3: how many. Distinct keys of the action's queued tasks in
   * key order, one index seek each (the recursion stops at the LIMIT: a CTE is read on demand).
   */
  queuedKeys: `
    WITH RECURSIVE k AS (
      (SELECT concurrency_key AS key FROM tasks
        WHERE status = 'queued' AND action = $1 AND concurrency_key > $2
        ORDER BY concurrency_key LIMIT 1)
      UNION ALL
      SELECT (SELECT concurrency_key FROM tasks
               WHERE status = 'queued' AND action = $1 AND concurrency_key > k.key
               ORDER BY concurrency_key LIMIT 1)
        FROM k WHERE k.key IS NOT NULL)
    SELECT key FROM k WHERE key IS NOT NULL LIMIT $3`,
  /**
   * $1: action, $2: keys. Waits for every other claim of these keys to commit: the caps are
   * counted by the next statement, whose snapshot (READ COMMITTED takes one per statement) then
   * holds every task those claims made running, and no claim counts a key while another is
   * between its count and its commit. Taken in the order of their lock ids, as by every claim
   * (PostgreSQL evaluates a volatile output expression after the ORDER BY).
   */
  lockKeys: `
    SELECT pg_advisory_xact_lock(hashtext('taskq:key'), h)
      FROM (SELECT DISTINCT hashtext($1 || chr(31) || k) AS h FROM unnest($2::text[]) AS u(k)) ids
     ORDER BY h`,
  /**
   * $1: action, $2: keys, $3: now, $4: cap per key (NULL: none), $5: most per key. Per key, its
   * running tasks (tasks_running_key: at most the cap) and up to `cap - running + 1` of its ready
   * tasks (one more than may be taken shows the key held back), in claim order.
   */
  claimCandidatesOfKeys: `
    SELECT c.seq, c.action, c.concurrency_key, c.priority, c.run_at, r.running
      FROM unnest($2::text[]) AS k(key)
     CROSS JOIN LATERAL (
       SELECT count(*)::int AS running FROM tasks
        WHERE status = 'running' AND concurrency_key IS NOT NULL AND action = $1 AND concurrency_key = k.key) r
     CROSS JOIN LATERAL (
       SELECT ${CANDIDATE_COLUMNS} FROM tasks
        WHERE status = 'queued' AND action = $1 AND concurrency_key = k.key AND run_at <= $3
          AND ${NOT_PAUSED()}
        ORDER BY priority DESC, run_at, seq
        LIMIT CASE WHEN $4::int IS NULL THEN $5::int ELSE least($5::int, greatest($4::int - r.running, 0)) + 1 END
          FOR UPDATE SKIP LOCKED) c`,
  /** $1: owner, $2: lease until, $3: now, $4: the chosen seqs (row-locked by this transaction). */
  claimSeqs: claimWhereSql(`seq = ANY($4::int8[]) AND status = 'queued' AND ${NOT_PAUSED()}`),
  /**
   * $1: action, $2: now, $3: per second, $4: burst. The bucket refilled to now (a new one starts
   * full); the update locks its row until commit, so the claims of one rate-limited action take
   * turns on it and each sees the tokens the last one left (an update that waited re-reads the
   * row). A clock behind the last refill adds nothing.
   */
  refillRateLimit: `
    INSERT INTO taskq_rate_limits AS b (action, tokens, refilled_at) VALUES ($1, $4, $2)
      ON CONFLICT (action) DO UPDATE SET
        tokens = least($4::float8, b.tokens + greatest(0, $2::int8 - b.refilled_at) * $3::float8 / 1000),
        refilled_at = greatest(b.refilled_at, $2::int8)
    RETURNING tokens`,
  /** $1: action, $2: tasks claimed, one token each. */
  spendRateLimit: `UPDATE taskq_rate_limits SET tokens = tokens - $2 WHERE action = $1`,

  /**
   * $1: now; $2..$6: arrays of seq, owner, attempt, result (JSON text), started_at; $7: attempts
   * the history keeps. Rows are found by seq (the primary key); owner and attempt prove the
   * lease is still this worker's. The lease is the guard, with no `status = 'running'` beside it:
   * a task has a lease owner exactly while it is running (every statement that ends a run clears
   * it), and a status condition let the generic plan walk the whole running range of the status
   * index (tasks_status_seq then, tasks_status_action_seq now), dead entries included, on every ack.
   * A task whose history is still empty gets no entry: it keeps the node in `completed_by` and
   * its entry is implied (IMPLIED_COMPLETION says why).
   */
  completeTasks: `
    WITH done AS (
    UPDATE tasks t
       SET status = 'completed', result = c.result::json, error = NULL, processed_at = $1,
           started_at = coalesce(c.started_at, t.started_at), lease_owner = NULL, lease_expires_at = NULL,
           ${IMPLIED_COMPLETION(
             attemptEntry({
               t: 't.',
               outcome: `'completed'`,
               error: 'NULL::text',
               stack: 'NULL::text',
               startedAt: 'coalesce(c.started_at, t.started_at)',
               now: '$1::int8',
             }),
             '$7::int',
           )}
      FROM unnest($2::int8[], $3::text[], $4::int[], $5::text[], $6::int8[])
           AS c(seq, owner, attempt, result, started_at)
     WHERE t.seq = c.seq AND t.lease_owner = c.owner AND t.attempts = c.attempt
    RETURNING t.seq, t.id, t.action, 'running'::text AS old_status, t.status, t.error, t.has_dependents, t.started_at
    ), ${SETTLE_DONE('$1::int8')}, ${COUNT_CHANGES}, ${COUNT_FINISHES('$1::int8')}, ${COUNT_ACTION_FINISHES('$1::int8')}
    ${DONE_AND_SETTLED}`,

  /**
   * $1: now; $2..$10: arrays of seq, owner, attempt, new status, error, retry_at, started_at,
   * how the attempt ended (its history's outcome), stack; $11: attempts the history keeps.
   */
  failTasks: `
    WITH done AS (
    UPDATE tasks t
       SET status = f.status, error = f.error, run_at = coalesce(f.retry_at, t.run_at),
           processed_at = CASE WHEN f.status = 'queued' THEN NULL ELSE $1::int8 END,
           started_at = coalesce(f.started_at, t.started_at), lease_owner = NULL, lease_expires_at = NULL,
           ${appendAttempt(
             't.',
             attemptEntry({
               t: 't.',
               outcome: 'f.ended',
               error: 'f.error',
               stack: 'f.stack',
               startedAt: 'coalesce(f.started_at, t.started_at)',
               now: '$1::int8',
             }),
             '$11::int',
           )}
      FROM unnest($2::int8[], $3::text[], $4::int[], $5::text[], $6::text[], $7::int8[], $8::int8[],
                  $9::text[], $10::text[])
           AS f(seq, owner, attempt, status, error, retry_at, started_at, ended, stack)
     WHERE t.seq = f.seq AND t.lease_owner = f.owner AND t.attempts = f.attempt
    RETURNING t.seq, t.id, t.action, 'running'::text AS old_status, t.status, t.error, t.has_dependents, t.started_at
    ), ${SETTLE_DONE('$1::int8')}, ${COUNT_CHANGES}, ${COUNT_FINISHES('$1::int8')}, ${COUNT_ACTION_FINISHES('$1::int8')}
    ${DONE_AND_SETTLED}`,

  /**
   * $1: owner, $2: lease until, $3: seqs of the tasks to renew, $4: their handlers' start times
   * (NULL for a task not started yet), recorded where `started_at` is not set yet.
   */
  extendLeases: `
    UPDATE tasks t SET lease_expires_at = $2, started_at = coalesce(t.started_at, r.started_at)
      FROM unnest($3::int8[], $4::int8[]) AS r(seq, started_at)
     WHERE t.seq = r.seq AND t.lease_owner = $1 AND t.status = 'running'
    RETURNING t.id, t.cancel_requested`,

  /** $1..$3: arrays of seq, owner, attempt. */
  releaseTasks: `
    WITH changed AS (
    UPDATE tasks t
       SET status = 'queued', attempts = t.attempts - 1, claimed_at = NULL, started_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
      FROM unnest($1::int8[], $2::text[], $3::int[]) AS r(seq, owner, attempt)
     WHERE t.seq = r.seq AND t.lease_owner = r.owner AND t.attempts = r.attempt
    RETURNING t.seq, t.action, 'running'::text AS old_status, t.status
    ), ${COUNT_CHANGES}
    SELECT seq FROM changed`,

  /**
   * $1: now, $2: backoff base ms, $3: backoff max ms ($2, $3 NULL: requeue at now), $4: attempts
   * the history keeps (the rescued attempt is recorded `lease_lost`, or `cancelled`). The rescue
   * policy of core/retry.ts, in the same shape as in sqlite/queries.ts (the comment there says
   * what each CASE decides); random() is already in [0, 1) here.
   */
  rescueExpiredLeases: `
    WITH done AS (
    UPDATE tasks
       SET status = CASE WHEN cancel_requested THEN 'cancelled'
                         WHEN attempts >= max_attempts THEN 'failed'
                         ELSE 'queued' END,
           error = ${LEASE_EXPIRED_ERROR},
           processed_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN $1::int8 END,
           ${appendAttempt(
             '',
             attemptEntry({
               t: '',
               outcome: `CASE WHEN cancel_requested THEN 'cancelled' ELSE 'lease_lost' END`,
               error: LEASE_EXPIRED_ERROR,
               stack: 'NULL::text',
               startedAt: 'started_at',
               now: '$1::int8',
             }),
             '$4::int',
           )},
           run_at = CASE WHEN cancel_requested OR attempts >= max_attempts OR $2::float8 IS NULL THEN $1::int8
                         ELSE $1::int8 + round(
                                least($3::float8, $2::float8 * power(2::float8, least(greatest(attempts - 1, 0), 60)))
                                * (0.5 + random() / 2))::int8
                    END,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE status = 'running' AND lease_expires_at < $1
    RETURNING seq, id, action, 'running'::text AS old_status, status, error, has_dependents, started_at
    ), ${SETTLE_DONE('$1::int8')}, ${COUNT_CHANGES}, ${COUNT_FINISHES('$1::int8')}, ${COUNT_ACTION_FINISHES('$1::int8')}
    ${DONE_AND_SETTLED}`,

  /** $1: seq, $2: now. A queued or blocked task is cancelled at once. */
  cancelQueued: `
    WITH old AS (
      SELECT seq, status FROM tasks WHERE seq = $1 AND status IN ('queued', 'blocked') FOR UPDATE
    ), changed AS (
      UPDATE tasks t SET status = 'cancelled', processed_at = $2, error = 'cancelled by request'
        FROM old WHERE t.seq = old.seq
      RETURNING t.*, old.status AS old_status
    ), ${COUNT_CHANGES}
    SELECT * FROM changed`,
  /**
   * $1..$4: arrays of seq, id, status, error of tasks that just finished; $5: now. Settles their
   * dependents (see SETTLE_DONE), counted; returns those it changed.
   */
  settleDependents: `
    WITH settled AS (
      SELECT * FROM taskq_settle_dependents($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8)
    ), changed AS (SELECT seq, action, old_status, status, NULL::int8 AS started_at FROM settled),
    ${COUNT_CHANGES}, ${COUNT_FINISHES('$5::int8')}, ${COUNT_ACTION_FINISHES('$5::int8')}
    SELECT id, status FROM settled`,
  /** $1: seq. */
  requestCancel: `UPDATE tasks SET cancel_requested = true WHERE seq = $1 AND status = 'running' RETURNING *`,

  /** $1: seq, $2: now. Returns the row with how it ended (old_status, old_error: its cascade's key). */
  retryTask: `
    WITH old AS (
      SELECT seq, status, error FROM tasks WHERE seq = $1 AND status IN (${statusList(RETRYABLE_STATUSES)})
         FOR UPDATE
    ), changed AS (
      UPDATE tasks t
         SET status = 'queued', attempts = 0, run_at = $2, error = NULL, result = NULL, cancel_requested = false,
             claimed_at = NULL, started_at = NULL, processed_at = NULL, progress = NULL, progress_message = NULL
        FROM old WHERE t.seq = old.seq
      RETURNING t.*, old.status AS old_status, old.error AS old_error
    ), ${COUNT_CHANGES}
    SELECT * FROM changed`,
  /**
   * $1: seqs of tasks no longer finished. Their failed and cancelled dependents, each with the
   * dependency it was found by (task_deps_dep): the re-block walk (shared/graph.ts).
   */
  failedDependentsOf: `
    SELECT e.dep_seq AS dep, t.seq, t.id, t.status, t.error FROM task_deps e JOIN tasks t ON t.seq = e.task_seq
     WHERE e.dep_seq = ANY($1::int8[]) AND t.status IN ('failed', 'cancelled')`,
  /** $1: seqs. Their dependencies as they are now (task_deps' key). */
  dependenciesOfSeqs: `
    SELECT e.task_seq AS task, t.seq, t.id, t.status, t.error FROM task_deps e JOIN tasks t ON t.seq = e.dep_seq
     WHERE e.task_seq = ANY($1::int8[])`,
  /** $1: seqs. Locks them in seq order (dependents after the dependency the caller holds). */
  lockCascade: `SELECT seq, id, status, error FROM tasks WHERE seq = ANY($1::int8[]) ORDER BY seq FOR UPDATE`,
  /** $1, $2: arrays of task and dependency seqs: those edges wait again. */
  unmetEdges: `
    UPDATE task_deps e SET met = false FROM unnest($1::int8[], $2::int8[]) AS u(task, dep)
     WHERE e.task_seq = u.task AND e.dep_seq = u.dep`,
  /**
   * $1: seqs blocked again (error and processed_at cleared), $2..$4: seqs, statuses and errors
   * of those that stay failed with another dependency's error, $5: seqs only recounted. Every
   * row's pending count is recounted from its edges (the rows are locked: lockCascade).
   */
  reblockTasks: `
    WITH r AS (
      SELECT seq, 'blocked'::text AS status, NULL::text AS error, true AS reopen FROM unnest($1::int8[]) AS seq
      UNION ALL SELECT f.seq, f.status, f.error, false FROM unnest($2::int8[], $3::text[], $4::text[]) AS f(seq, status, error)
      UNION ALL SELECT seq, NULL, NULL, false FROM unnest($5::int8[]) AS seq
    ), changed AS (
      UPDATE tasks t
         SET status = coalesce(r.status, t.status),
             error = CASE WHEN r.reopen THEN NULL WHEN r.status IS NOT NULL THEN r.error ELSE t.error END,
             processed_at = CASE WHEN r.reopen THEN NULL ELSE t.processed_at END,
             pending_deps = (SELECT count(*) FROM task_deps e WHERE e.task_seq = t.seq AND NOT e.met)
        FROM r JOIN tasks o ON o.seq = r.seq
       WHERE t.seq = r.seq
      RETURNING t.seq, t.id, t.action, o.status AS old_status, t.status
    ), ${COUNT_CHANGES}
    SELECT id, status FROM changed`,

  /** $1: seq, $2: owner, $3: attempt, $4: progress, $5: message. */
  setProgress: `
    UPDATE tasks SET progress = $4, progress_message = $5
     WHERE seq = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3`,

  /** $1..$3: cutoffs for completed, failed, cancelled; $4: limit. */
  pruneTasks: `
    DELETE FROM tasks WHERE seq IN (
      SELECT seq FROM tasks WHERE status = 'completed' AND processed_at < $1
      UNION ALL SELECT seq FROM tasks WHERE status = 'failed' AND processed_at < $2
      UNION ALL SELECT seq FROM tasks WHERE status = 'cancelled' AND processed_at < $3
      LIMIT $4)`,

  countPrunableTasks: `
    SELECT (SELECT count(*) FROM tasks WHERE status = 'completed' AND processed_at < $1)
         + (SELECT count(*) FROM tasks WHERE status = 'failed' AND processed_at < $2)
         + (SELECT count(*) FROM tasks WHERE status = 'cancelled' AND processed_at < $3) AS n`,

  /** $1: channels, $2: payloads; one NOTIFY each (sent after the change it announces committed). */
  notify: `SELECT pg_notify(n.channel, n.payload) FROM unnest($1::text[], $2::text[]) AS n(channel, payload)`,

  ping: `SELECT 1`,

  // Nodes (migration 0009), as in sqlite/queries.ts: a heartbeat upserts the node's row and, in
  // the same statement, deletes the rows of nodes last heard of before $13.
  /**
   * $1..$11: id, host, pid, role, version, started_at, heartbeat_ms, concurrency, running,
   * buffered, tasks (JSON text); $12: now; $13: prune before.
   */
  heartbeatNode: `
    WITH pruned AS (
      DELETE FROM taskq_nodes WHERE coalesce(stopped_at, heartbeat_at) < $13 AND id <> $1
    )
    INSERT INTO taskq_nodes AS n (id, host, pid, role, version, started_at, heartbeat_at, heartbeat_ms,
                                  concurrency, running, buffered, tasks, stopped_at)
    VALUES ($1, $2, $3, $4, $5, $6, $12, $7, $8, $9, $10, $11::jsonb, NULL)
    ON CONFLICT (id) DO UPDATE SET
      heartbeat_at = excluded.heartbeat_at, heartbeat_ms = excluded.heartbeat_ms,
      concurrency = excluded.concurrency, running = excluded.running, buffered = excluded.buffered,
      tasks = excluded.tasks, stopped_at = NULL`,
  /** $1: id, $2: now. */
  stopNode: `UPDATE taskq_nodes SET stopped_at = $2, running = 0, buffered = 0, tasks = '[]' WHERE id = $1`,
  /** $1: since. The whole table: it holds at most the nodes of the last hour. */
  listNodes: `
    SELECT * FROM taskq_nodes WHERE coalesce(stopped_at, heartbeat_at) >= $1 ORDER BY started_at, id`,

  // Stats from the counters of migration 0003 (docs/stats.md): the cost does not grow with the
  // table. Shards are summed (a shard alone may be negative). The oldest queued task is the one
  // inserted first: the first of the heads of each action's queued range of
  // tasks_status_action_seq, for the actions the counters say have queued tasks (OLDEST_QUEUED),
  // rather than a scan. One statement, so counts and queue age come from one snapshot; with no
  // counts, one row whose action is null still carries `t`.
  countsFromCounters: `
    SELECT c.*, o.t
      FROM (SELECT (SELECT q.t FROM (${OLDEST_QUEUED}) q ORDER BY q.seq LIMIT 1) AS t) o
      LEFT JOIN (SELECT action, sum(blocked)::int8 AS blocked, sum(queued)::int8 AS queued, sum(running)::int8 AS running,
                        sum(completed)::int8 AS completed, sum(failed)::int8 AS failed,
                        sum(cancelled)::int8 AS cancelled
                   FROM task_counts GROUP BY action) c ON true
     ORDER BY c.action`,
  /** $1: since; whole minutes, from the one holding `since`. */
  throughputFromRollup: `
    SELECT minute, sum(completed)::int8 AS completed, sum(failed)::int8 AS failed
      FROM task_throughput
     WHERE minute >= ($1::int8 / 60000) * 60000
     GROUP BY minute HAVING sum(completed) + sum(failed) > 0 ORDER BY minute`,

  // The operator's console (migration 0011, docs/operations.md).
  /** $1: action, $2: now. A pause keeps its first time; returns the pause. */
  pauseAction: `
    WITH added AS (
      INSERT INTO taskq_paused_actions (action, paused_at) VALUES ($1, $2)
        ON CONFLICT (action) DO NOTHING RETURNING action, paused_at)
    SELECT action, paused_at FROM added
    UNION ALL SELECT action, paused_at FROM taskq_paused_actions WHERE action = $1`,
  /** $1: action. Returns how many of its tasks wait queued (who to wake), if it was paused. */
  resumeAction: `
    WITH gone AS (DELETE FROM taskq_paused_actions WHERE action = $1 RETURNING action)
    SELECT coalesce((SELECT sum(queued) FROM task_counts WHERE action = $1), 0)::int8 AS queued FROM gone`,
  pausedActions: `SELECT action, paused_at FROM taskq_paused_actions ORDER BY action`,
  /** $1: since. The per-action ring's minutes from the one holding `since`, shards summed. */
  actionMinutes: `
    SELECT action, minute, ${ACTION_RING_COLUMNS.map((c) => `sum(${c})::int8 AS ${c}`).join(', ')}
      FROM task_action_minutes
     WHERE minute >= ($1::int8 / 60000) * 60000
     GROUP BY action, minute HAVING sum(completed) + sum(failed) > 0
     ORDER BY action, minute`,
  /** Per action with queued tasks (the counters say which), its oldest (OLDEST_QUEUED). */
  oldestQueuedByAction: `SELECT action, t FROM (${OLDEST_QUEUED}) q`,
  scheduleStates: `SELECT name, paused_at, last_run_at, last_task_id FROM taskq_schedules ORDER BY name`,
  /** $1: name, $2: now when pausing (an earlier pause keeps its time), NULL when resuming. */
  setSchedulePaused: `
    INSERT INTO taskq_schedules AS s (name, paused_at) VALUES ($1, $2)
      ON CONFLICT (name) DO UPDATE SET
        paused_at = CASE WHEN excluded.paused_at IS NULL THEN NULL
                         ELSE coalesce(s.paused_at, excluded.paused_at) END
    RETURNING name, paused_at, last_run_at, last_task_id`,
  /** $1: name, $2: at, $3: task id. The latest run wins, whatever order nodes record them in. */
  recordScheduleRun: `
    INSERT INTO taskq_schedules AS s (name, last_run_at, last_task_id) VALUES ($1, $2, $3)
      ON CONFLICT (name) DO UPDATE SET
        last_task_id = CASE WHEN excluded.last_run_at >= coalesce(s.last_run_at, 0)
                            THEN excluded.last_task_id ELSE s.last_task_id END,
        last_run_at = greatest(coalesce(s.last_run_at, 0), excluded.last_run_at)`,

  // The audit log (migration 0012, queue/audit.ts): a page newest first from the index its
  // filters name, and pruning by time. The token and the action are ranges (SEEK_EQUAL): as
  // equalities, a generic plan on a log that one token fills walked the primary key and filtered,
  // reading every entry for a token that has few (106 ms at 1,000,000 entries, against 0.04).
  // (A prepared statement turns generic after five executions when its generic plan looks as cheap.)
  /** $1..$8: at, token, method, route, action, target, detail (JSON text), status. */
  insertAuditEntry: `
    INSERT INTO taskq_audit_log (at, token, method, route, action, target, detail, status)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)`,
  /** $1: before seq, $2: limit. */
  listAudit: `
    SELECT * FROM taskq_audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2`,
  /** $1: before seq, $2: limit, $3: token. */
  listAuditByToken: `
    SELECT * FROM taskq_audit_log
     WHERE ${SEEK_EQUAL('token', '$3')} AND seq < $1 ORDER BY token DESC, seq DESC LIMIT $2`,
  /** $1: before seq, $2: limit, $3: action. */
  listAuditByAction: `
    SELECT * FROM taskq_audit_log
     WHERE ${SEEK_EQUAL('action', '$3')} AND seq < $1 ORDER BY action DESC, seq DESC LIMIT $2`,
  /** $1: before seq, $2: limit, $3: token, $4: action. */
  listAuditByTokenAction: `
    SELECT * FROM taskq_audit_log
     WHERE ${SEEK_EQUAL('token', '$3')} AND ${SEEK_EQUAL('action', '$4')} AND seq < $1
     ORDER BY token DESC, action DESC, seq DESC LIMIT $2`,
  /**
   * $1: before (epoch ms), $2: limit. The seqs as an array, so each is a probe of the primary key
   * (as `IN (SELECT ...)` the planner hashed them against a scan of the whole table).
   */
  pruneAudit: `
    DELETE FROM taskq_audit_log WHERE seq = ANY (ARRAY(
      SELECT seq FROM taskq_audit_log WHERE at < $1 ORDER BY at LIMIT $2))`,
} as const;

/**
 * The filter conditions in PostgreSQL (shared/list-filter.ts renders the statement; the SQLite
 * dialect is the model). A status is a literal, so a partial index can serve it. `data #> path`
 * is the field's JSON as stored (`data` is json, stored compact), compared as text with the JSON
 * text of the value. Because json keeps its input text, that field's text is a substring of the
 * whole document: `strpos` on the raw text is a cheap necessary condition checked first, so a
 * scan parses only the rows that might match (2-3x faster on a scan of 50,000 rows).
 */
export const LIST_DIALECT: ListDialect = {
  columns: LISTED_COLUMNS,
  seekEqual: SEEK_EQUAL,
  // tasks_status_action_seq (migration 0014): a walk by status merges over every action the
  // counters know (a task's insert writes its action's counter row in the same statement, so no
  // action with tasks is missing), a walk by action over every status.
  keyIndex: {
    order: 'status DESC, action DESC, seq DESC',
    branches: {
      action: {
        from: '(SELECT action FROM task_counts GROUP BY action) b',
        match: SEEK_EQUAL('action', 'b.action'),
      },
      status: {
        from: `unnest(ARRAY[${statusList(TASK_STATUSES)}]::text[]) AS b(status)`,
        match: 'status = b.status',
      },
    },
  },
  from: () => 'FROM tasks',
  placeholder: (n) => `$${n}`,
  condition(c: DialectCondition, bind) {
    switch (c.kind) {
      case 'status':
        return `status = ${statusList([c.value])}`;
      case 'seqs':
        return `seq = ANY(${bind(c.value)}::int8[])`;
      case 'ids':
        return `id = ANY(${bind(c.value)}::text[])`;
      case 'idPrefix':
        return `starts_with(id, ${bind(c.value)})`;
      case 'data': {
        const json = bind(c.json);
        return `(strpos(data::text, ${json}) > 0 AND (data #> ${bind(c.path)}::text[])::text = ${json})`;
      }
      case 'error':
        return `strpos(error, ${bind(c.value)}) > 0`;
    }
  },
};

/**
 * Bulk operations (shared/bulk-step.ts), as in sqlite/queries.ts: $1 the step's seqs, $2 now;
 * the changes keep the stats counters as every status change does.
 */
export const BULK_SQL = {
  bulkRetry: `
    WITH old AS (
      SELECT seq, status, error FROM tasks
       WHERE seq = ANY($1::int8[]) AND status IN (${statusList(RETRYABLE_STATUSES)}) ORDER BY seq FOR UPDATE
    ), changed AS (
      UPDATE tasks t
         SET status = 'queued', attempts = 0, run_at = $2, error = NULL, result = NULL, cancel_requested = false,
             claimed_at = NULL, started_at = NULL, processed_at = NULL, progress = NULL, progress_message = NULL
        FROM old WHERE t.seq = old.seq
      RETURNING t.seq, t.id, t.action, old.status AS old_status, old.error AS old_error, t.status, t.has_dependents
    ), ${COUNT_CHANGES}
    SELECT seq, id, action, old_status, old_error, has_dependents FROM changed`,
  bulkCancelQueued: `
    WITH changed AS (
      UPDATE tasks SET status = 'cancelled', processed_at = $2, error = 'cancelled by request'
       WHERE seq = ANY($1::int8[]) AND status = 'queued'
      RETURNING id, action, 'queued'::text AS old_status, status
    ), ${COUNT_CHANGES}
    SELECT id FROM changed`,
  bulkRequestCancel: `
    UPDATE tasks SET cancel_requested = true
     WHERE seq = ANY($1::int8[]) AND status = 'running' AND NOT cancel_requested
    RETURNING id`,
  /** The statement trigger of migration 0003 lowers the counters. */
  bulkDelete: `DELETE FROM tasks WHERE seq = ANY($1::int8[]) AND status IN (${statusList(BULK_STATUSES.delete)}) RETURNING id`,
  maxTaskSeq: `SELECT coalesce(max(seq), 0) AS seq FROM tasks`,
  /** $1: request key. Serialises the creation of operations of one request key. */
  lockOperationRequest: `SELECT pg_advisory_xact_lock(hashtext('taskq:operation'), hashtext($1))`,
  /** $1: idempotency key. */
  operationByIdempotencyKey: `SELECT * FROM taskq_operations WHERE idempotency_key = $1`,
  /** $1: request key. */
  runningOperationByRequest: `SELECT * FROM taskq_operations WHERE request_key = $1 AND status = 'running'`,
  /** $1..$10: id, op, filter, request key, idempotency key, created by, matched, exact, max seq, now. */
  insertOperation: `
    INSERT INTO taskq_operations (id, op, filter, request_key, idempotency_key, created_by, status, matched,
                                  matched_exact, max_seq, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $9, $10, $10)
    RETURNING *`,
  /** $1: id. */
  getOperation: `SELECT * FROM taskq_operations WHERE id = $1`,
  /** $1: owner, $2: lease until, $3: now. A running operation whose lease is free or expired. */
  claimOperation: `
    UPDATE taskq_operations SET lease_owner = $1, lease_expires_at = $2, updated_at = $3
     WHERE id = (SELECT id FROM taskq_operations
                  WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < $3)
                  LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *`,
  /** $1: id, $2: owner. Locks the row for the step's transaction. */
  heldOperation: `
    SELECT * FROM taskq_operations WHERE id = $1 AND lease_owner = $2 AND status = 'running' FOR UPDATE`,
  /** $1: id, $2: done, $3: skipped, $4: cursor, $5: status, $6: finished, $7: lease until, $8: now. */
  advanceOperation: `
    UPDATE taskq_operations
       SET done = done + $2, skipped = skipped + $3, cursor = $4, status = $5,
           matched = CASE WHEN $6 THEN done + $2 + skipped + $3 ELSE greatest(matched, done + $2 + skipped + $3) END,
           matched_exact = matched_exact OR $6,
           lease_owner = CASE WHEN $6 THEN NULL ELSE lease_owner END,
           lease_expires_at = CASE WHEN $6 THEN NULL ELSE $7::int8 END,
           updated_at = $8, finished_at = CASE WHEN $6 THEN $8::int8 END
     WHERE id = $1
    RETURNING *`,
  /** $1: id, $2: owner, $3: error, $4: now. */
  operationError: `
    UPDATE taskq_operations SET errors = errors + 1, last_error = $3, updated_at = $4
     WHERE id = $1 AND lease_owner = $2`,
  /** $1: id, $2: owner. */
  releaseOperation: `
    UPDATE taskq_operations SET lease_owner = NULL, lease_expires_at = NULL
     WHERE id = $1 AND lease_owner = $2 AND status = 'running'`,
} as const;

/** Every named statement of the driver. */
export const SQL = { ...TASK_SQL, ...BULK_SQL } as const;
export type QueryName = keyof typeof SQL;

/** Claims of at most this many tasks carry their limit in the statement text (claimStatement). */
export const LITERAL_CLAIM_LIMIT_MAX = 16;

export interface ClaimStatement {
  name: string;
  text: string;
  /**
   * Whether the limit is parameter $4; else it is part of the text, and the parameters after it
   * move down one ($4 is the first of them).
   */
  limitParam: boolean;
}

const claimStatements = new Map<string, ClaimStatement>();

/**
 * The statement of a plain claim of `limit` tasks. With `LIMIT $4`, the plan cache's generic plan
 * sizes the limit as a tenth of the table, so it looks far dearer than a custom plan and every
 * call is planned again: half the server CPU of a claim of 7 (pg_prepared_statements showed no
 * generic plan ever used). A small limit written into the text (a number this driver computed,
 * never input) makes the generic plan as good as a custom one, planned once per connection and
 * text. Larger claims keep the parameter: planning is shared by many tasks there, and each text is
 * a prepared statement of about 230 KiB in every connection that runs it.
 */
export function claimStatement(kind: PlainClaim | 'claimFromFloor', limit: number): ClaimStatement {
  const literal = limit <= LITERAL_CLAIM_LIMIT_MAX && Number.isSafeInteger(limit) && limit >= 1;
  if (!literal && kind !== 'claimFromFloor') return { name: kind, text: SQL[kind], limitParam: true };
  const name = literal ? `${kind}_${limit}` : kind;
  let statement = claimStatements.get(name);
  if (!statement) {
    const [limitText, firstOwn] = literal ? [String(limit), 4] : ['$4', 5];
    const text =
      kind === 'claimFromFloor'
        ? floorClaimSql(limitText, firstOwn)
        : claimSql(CLAIM_FILTERS[kind](firstOwn), limitText);
    statement = { name, text, limitParam: !literal };
    claimStatements.set(name, statement);
  }
  return statement;
}

/** Channel names are the driver's own (a prefix and a checked schema identifier); quoted anyway. */
const quoted = (channel: string) => `"${channel}"`;
/** LISTEN takes no parameters, so the channel is part of the text. */
export const listenSql = (channel: string) => `LISTEN ${quoted(channel)}`;
export const unlistenSql = (channel: string) => `UNLISTEN ${quoted(channel)}`;
