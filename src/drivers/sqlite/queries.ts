/**
 * Every SQLite statement of the driver, named after the driver method that runs it.
 * Parameters are named (@name), except in the hottest statement (insertTasksSql). Statements are
 * prepared once, on first use.
 */
import { RUN_BUCKET_COLUMNS } from '../../core/actions.js';
import { ATTEMPT_ERROR_MAX, ATTEMPT_STACK_MAX, BULK_STATUSES, RETRYABLE_STATUSES } from '../../core/task.js';
import type { DialectCondition, ListDialect, ListIndex, ListQuery } from '../shared/list-filter.js';
import { statusList } from '../shared/status-list.js';

/**
 * What every claim statement adds to what is claimable: no paused action (migration 0011). The
 * subquery runs once per statement; with nothing paused it is one probe of an empty table.
 */
const NOT_PAUSED = 'action NOT IN (SELECT action FROM taskq_paused_actions)';

/** The claim's update: status `running` under the lease, for the rows `where` selects. */
function claimWhereSql(where: string): string {
  return `
    UPDATE tasks
       SET status = 'running', attempts = attempts + 1, lease_owner = @owner,
           lease_expires_at = @leaseUntil, claimed_at = @now, started_at = NULL,
           progress = NULL, progress_message = NULL
     WHERE ${where}
    RETURNING seq, id, action, data, priority, run_at, attempts, max_attempts, error, unique_key,
              concurrency_key, cancel_requested, created_at, traceparent, tracestate, parent_id, waits`;
}

/**
 * A claim: the first @limit claimable tasks in claim order, with `filter` added to what is
 * claimable. `started_at` stays NULL until the worker reports that the handler started.
 */
function claimSql(filter: string): string {
  return claimWhereSql(`seq IN (SELECT seq FROM tasks INDEXED BY tasks_claimable
                    WHERE status = 'queued' AND run_at <= @now AND ${NOT_PAUSED}${filter}
                    ORDER BY priority DESC, run_at, seq
                    LIMIT @limit)`);
}

/** What the candidate reads of a limited claim return (shared/flow-claim.ts). */
const CANDIDATE_COLUMNS = 'seq, action, concurrency_key, priority, run_at';

/**
 * Connection settings, as the text after PRAGMA that better-sqlite3's db.pragma() takes. The
 * driver's connection applies `walMode` (retried while busy) and then CONNECTION_SETTINGS; the
 * checkpoint thread's connection applies `synchronous` and runs `checkpointPassive`.
 */
export const PRAGMA = {
  walMode: 'journal_mode = WAL',
  // Commits reach the OS, not the disk: durable writes wait for wal-sync.ts to flush the WAL.
  synchronous: 'synchronous = NORMAL',
  foreignKeys: 'foreign_keys = ON',
  // The default page cache (2 MiB) is smaller than a busy queue's indexes: a 64 MiB cache and
  // memory-mapped reads keep claims and acks from reading index pages back from the file
  // (`npm run bench` measures the claim-and-ack loop).
  cacheSize: 'cache_size = -65536',
  mmapSize: 'mmap_size = 268435456',
  /** Pages the WAL may reach before a COMMIT checkpoints it itself (checkpointer.ts). */
  walAutocheckpoint: (pages: number) => `wal_autocheckpoint = ${pages}`,
  checkpointPassive: 'wal_checkpoint(PASSIVE)',
} as const;

/** What every connection of the driver sets after entering WAL mode, in order. */
export const CONNECTION_SETTINGS = [
  PRAGMA.synchronous,
  PRAGMA.foreignKeys,
  PRAGMA.cacheSize,
  PRAGMA.mmapSize,
];

/**
 * The attempt ending now, as a JSON object for its history (core/task.ts AttemptRecord). Column
 * names are the row's values before the UPDATE (its owner and claim time, which it clears).
 */
const attemptEntry = (e: { outcome: string; error: string; stack: string; startedAt: string }) =>
  `json_object('attempt', attempts, 'node', lease_owner, 'claimed_at', claimed_at,
               'started_at', ${e.startedAt}, 'finished_at', @now, 'outcome', ${e.outcome},
               'error', substr(${e.error}, 1, ${ATTEMPT_ERROR_MAX}), 'stack', substr(${e.stack}, 1, ${ATTEMPT_STACK_MAX}))`;

/**
 * attempt_history with `entry` appended, in the statement that ends the attempt (no statement or
 * row of its own). Past @historyMax the oldest are dropped; below it (the common case) it is one
 * json_insert.
 */
const appendAttempt = (entry: string) => `attempt_history =
         CASE WHEN attempt_history IS NULL THEN json_array(${entry})
              WHEN json_array_length(attempt_history) < @historyMax
                THEN json_insert(attempt_history, '$[#]', ${entry})
              ELSE (SELECT json_group_array(json(value)) FROM (
                      SELECT value FROM json_each(json_insert(attempt_history, '$[#]', ${entry}))
                       WHERE key > json_array_length(attempt_history) - @historyMax ORDER BY key))
         END`;

/** What the rescuer records: the message it leaves as the task's error. */
const LEASE_EXPIRED_ERROR = `'lease expired: the worker running it stopped renewing (attempt ' || attempts || ')'`;

/** Every column but attempt_history: listings do not carry it (GET /tasks/:id does). */
const LISTED_COLUMNS = `seq, id, action, data, status, priority, run_at, attempts, max_attempts, result, error,
       progress, progress_message, unique_key, unique_until, concurrency_key, lease_owner, lease_expires_at,
       cancel_requested, created_at, claimed_at, started_at, processed_at, traceparent, tracestate,
       parent_id, pending_deps, has_dependents, dep_failure_runs, waits`;

/** A random number in [0, 1): SQLite's random() is a signed 64-bit integer. */
const RANDOM_UNIT = '(random() / 18446744073709551616.0 + 0.5)';

const TASK_SQL = {
  // Transactions: prepared once, as statements (db.transaction() builds a wrapper per call).
  begin: `BEGIN IMMEDIATE`,
  commit: `COMMIT`,
  rollback: `ROLLBACK`,
  /** Whether migrations have run (taskq_meta comes with 0003). */
  isMigrated: `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'taskq_meta'`,

  // An insert batch numbers its tasks itself (under the write lock), so it knows every id before
  // it writes (task-ids.ts): above the newest task and above every seq pruning may have deleted.
  // Reading the floor instead of keeping a counter saves a page write per commit.
  lastSeq: `
    SELECT max(coalesce((SELECT max(seq) FROM tasks), 0),
               (SELECT value FROM taskq_meta WHERE name = 'seq_floor')) AS value`,
  raiseSeqFloor: `
    UPDATE taskq_meta SET value = max(value, coalesce((SELECT max(seq) FROM tasks), 0))
     WHERE name = 'seq_floor'`,
  readIdKey: `SELECT value FROM taskq_meta WHERE name = 'task_id_key'`,
  findByUniqueKey: `SELECT * FROM tasks WHERE unique_key = ?`,
  expireUniqueKey: `UPDATE tasks SET unique_key = NULL, unique_until = NULL WHERE seq = ?`,

  // By a seq decoded from the id; the stored id must match too (see task-ids.ts).
  getTask: `SELECT * FROM tasks WHERE seq = @seq AND id = @id`,
  /** Ids issued before migration 0003 were random: their seq is looked up instead. */
  legacySeq: `SELECT seq FROM taskq_legacy_ids WHERE id = ?`,

  // INDEXED BY: without statistics the planner picks tasks_status_seq and sorts every queued row
  // on each claim (quadratic in the backlog); the partial index walks them in claim order.
  // Claims return only the columns the claim did not just set (the rest of the record is known:
  // see claimedRecord in task-row.ts): fewer values to copy out on the hottest statement.
  claimTasks: claimSql(''),
  /** The same, skipping actions at their per-action limit; @excludeActions is a JSON array. */
  claimTasksExceptActions: claimSql(
    '\n                      AND action NOT IN (SELECT value FROM json_each(@excludeActions))',
  ),

  // A claim under flow-control limits (shared/flow-claim.ts says what it decides), all under
  // the write lock: the candidates of each part are read, then the chosen seqs claimed.
  /**
   * Whether any of @actions (a JSON array) has queued tasks: one seek each in tasks_claimable_key.
   * Without any, the plain claim (leaving them out) does the work alone.
   */
  limitedQueued: `
    SELECT EXISTS (SELECT 1 FROM json_each(@actions) a
                    WHERE EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_claimable_key
                                   WHERE status = 'queued' AND action = a.value)
                      AND a.value NOT IN (SELECT action FROM taskq_paused_actions)) AS queued`,
  /** The unlimited part: the head of the queue without @excluded (a JSON array of actions). */
  claimCandidatesExcept: `
    SELECT ${CANDIDATE_COLUMNS} FROM tasks INDEXED BY tasks_claimable
     WHERE status = 'queued' AND run_at <= @now
       AND action NOT IN (SELECT value FROM json_each(@excluded)) AND ${NOT_PAUSED}
     ORDER BY priority DESC, run_at, seq
     LIMIT @limit`,
  /** The ready tasks of one action and key (@key NULL: those without a key), in claim order. */
  claimCandidatesOfKey: `
    SELECT ${CANDIDATE_COLUMNS} FROM tasks INDEXED BY tasks_claimable_key
     WHERE status = 'queued' AND action = @action AND concurrency_key IS @key AND run_at <= @now
       AND ${NOT_PAUSED}
     ORDER BY priority DESC, run_at, seq
     LIMIT @limit`,
  /**
   * Up to @limit distinct keys of the action's queued tasks after @after, in key order: one index
   * seek per key, however many tasks each holds.
   */
  queuedKeys: `
    WITH RECURSIVE k(key) AS (
      SELECT (SELECT concurrency_key FROM tasks INDEXED BY tasks_claimable_key
               WHERE status = 'queued' AND action = @action AND concurrency_key > @after
               ORDER BY concurrency_key LIMIT 1)
      UNION ALL
      SELECT (SELECT concurrency_key FROM tasks INDEXED BY tasks_claimable_key
               WHERE status = 'queued' AND action = @action AND concurrency_key > k.key
               ORDER BY concurrency_key LIMIT 1)
        FROM k WHERE k.key IS NOT NULL
      LIMIT @limit + 1)
    SELECT key FROM k WHERE key IS NOT NULL`,
  /** Running tasks of one action and key: at most its cap, found in tasks_running_key. */
  runningOfKey: `
    SELECT count(*) AS n FROM tasks INDEXED BY tasks_running_key
     WHERE status = 'running' AND concurrency_key IS NOT NULL AND action = @action AND concurrency_key = @key`,
  /** @seqs: JSON array of the chosen seqs; each is still queued (the write lock is held). */
  claimSeqs: claimWhereSql(
    `seq IN (SELECT value FROM json_each(@seqs)) AND status = 'queued' AND ${NOT_PAUSED}`,
  ),
  /**
   * The action's bucket, refilled to @now: @perSecond tokens a second, at most @burst; a new
   * bucket starts full. A clock behind the last refill adds nothing (refilled_at never goes back).
   */
  refillRateLimit: `
    INSERT INTO taskq_rate_limits (action, tokens, refilled_at) VALUES (@action, @burst, @now)
      ON CONFLICT (action) DO UPDATE SET
        tokens = min(@burst, tokens + max(0, @now - refilled_at) * @perSecond / 1000.0),
        refilled_at = max(refilled_at, @now)
    RETURNING tokens`,
  /** @count tasks claimed: one token each. */
  spendRateLimit: `UPDATE taskq_rate_limits SET tokens = tokens - @count WHERE action = @action`,

  /** Returns has_dependents: only a task that has them needs settleEdges (docs/workflows.md). */
  completeTasks: `
    UPDATE tasks
       SET status = 'completed', result = @result, error = NULL, processed_at = @now,
           started_at = coalesce(@startedAt, started_at), lease_owner = NULL, lease_expires_at = NULL,
           ${appendAttempt(
             attemptEntry({
               outcome: `'completed'`,
               error: 'NULL',
               stack: 'NULL',
               startedAt: 'coalesce(@startedAt, started_at)',
             }),
           )}
     WHERE seq = @seq AND status = 'running' AND lease_owner = @owner AND attempts = @attempt
    RETURNING has_dependents`,

  failTasks: `
    UPDATE tasks
       SET status = @status, error = @error, run_at = coalesce(@retryAt, run_at),
           processed_at = CASE WHEN @status = 'queued' THEN NULL ELSE @now END,
           started_at = coalesce(@startedAt, started_at), lease_owner = NULL, lease_expires_at = NULL,
           ${appendAttempt(
             attemptEntry({
               outcome: '@ended',
               error: '@error',
               stack: '@stack',
               startedAt: 'coalesce(@startedAt, started_at)',
             }),
           )}
     WHERE seq = @seq AND status = 'running' AND lease_owner = @owner AND attempts = @attempt
    RETURNING has_dependents`,

  /** @seqs: JSON array of seqs; @started: JSON array of [seq, startedAt] of those whose handler started. */
  extendLeases: `
    UPDATE tasks
       SET lease_expires_at = @leaseUntil,
           started_at = coalesce(started_at, (SELECT s.value ->> '$[1]' FROM json_each(@started) s
                                                WHERE s.value ->> '$[0]' = seq))
     WHERE seq IN (SELECT value FROM json_each(@seqs)) AND lease_owner = @owner AND status = 'running'
    RETURNING id, cancel_requested`,

  releaseTasks: `
    UPDATE tasks
       SET status = 'queued', attempts = attempts - 1, claimed_at = NULL, started_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE seq = @seq AND status = 'running' AND lease_owner = @owner AND attempts = @attempt`,

  // The rescue policy, written in the same shape in postgres/queries.ts; both are core/retry.ts
  // in SQL for an attempt that ended as `lease_expired`: willRetry (a cancel request ends it
  // `cancelled`, no attempts left ends it `failed`, else back to `queued`) and backoffDelayMs of
  // `attempts` (@baseMs, @maxMs; NULL: requeued at once). Only the dialect differs: see
  // RANDOM_UNIT and the integer cast. The exponent stops at 60, where the ceiling is long past
  // any @maxMs, so power() cannot overflow.
  rescueExpiredLeases: `
    UPDATE tasks
       SET status = CASE WHEN cancel_requested THEN 'cancelled'
                         WHEN attempts >= max_attempts THEN 'failed'
                         ELSE 'queued' END,
           error = ${LEASE_EXPIRED_ERROR},
           processed_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN @now END,
           ${appendAttempt(
             attemptEntry({
               outcome: `CASE WHEN cancel_requested THEN 'cancelled' ELSE 'lease_lost' END`,
               error: LEASE_EXPIRED_ERROR,
               stack: 'NULL',
               startedAt: 'started_at',
             }),
           )},
           run_at = CASE WHEN cancel_requested OR attempts >= max_attempts OR @baseMs IS NULL THEN @now
                         ELSE @now + CAST(round(
                                min(@maxMs, @baseMs * power(2, min(max(attempts - 1, 0), 60)))
                                * (0.5 + ${RANDOM_UNIT} / 2)) AS INTEGER)
                    END,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE status = 'running' AND lease_expires_at < @now
    RETURNING seq, id, status, error, has_dependents`,

  /** A queued or blocked task is cancelled at once. */
  cancelQueued: `
    UPDATE tasks SET status = 'cancelled', processed_at = @now, error = 'cancelled by request'
     WHERE seq = @seq AND status IN ('queued', 'blocked')
    RETURNING has_dependents`,

  // Dependencies and children (docs/workflows.md); postgres/queries.ts has the same names.
  /** A new task's dependency: marked as having dependents; its status and error as they are. */
  lockDependency: `UPDATE tasks SET has_dependents = 1 WHERE seq = @seq RETURNING id, status, error`,
  /** One task with its graph columns (the hot multi-row insert leaves them at their defaults). */
  insertGraphTask: `
    INSERT INTO tasks (seq, id, action, data, status, priority, run_at, max_attempts, unique_key, unique_until,
                       concurrency_key, created_at, traceparent, tracestate, parent_id, pending_deps,
                       dep_failure_runs, error, processed_at)
    VALUES (@seq, @id, @action, @data, @status, @priority, @runAt, @maxAttempts, @uniqueKey, @uniqueUntil,
            @concurrencyKey, @createdAt, @traceparent, @tracestate, @parentId, @pendingDeps,
            @depFailureRuns, @error, @processedAt)`,
  insertDep: `INSERT INTO task_deps (task_seq, dep_seq, met) VALUES (@task, @dep, @met) ON CONFLICT DO NOTHING`,
  /** The unsettled edges into @dep, settled now (each edge once): its dependents. */
  settleEdges: `UPDATE task_deps SET met = 1 WHERE dep_seq = @dep AND met = 0 RETURNING task_seq`,
  /**
   * A blocked dependent that fails with its dependency (on_dependency_failure 'fail'); nothing
   * for any other. @status: failed or cancelled.
   */
  failDependent: `
    UPDATE tasks SET status = @status, error = @error, processed_at = @now, pending_deps = pending_deps - 1
     WHERE seq = @seq AND status = 'blocked' AND dep_failure_runs = 0
    RETURNING id, status, error`,
  /** One dependency of the task settled: queued when it was blocked on that one alone. */
  releaseDependent: `
    UPDATE tasks SET pending_deps = pending_deps - 1,
                     status = CASE WHEN status = 'blocked' AND pending_deps <= 1 THEN 'queued' ELSE status END
     WHERE seq = @seq
    RETURNING id, status, pending_deps`,
  dependenciesOf: `
    SELECT t.id, t.action, t.status, t.pending_deps FROM task_deps e JOIN tasks t ON t.seq = e.dep_seq
     WHERE e.task_seq = @seq ORDER BY e.dep_seq LIMIT @limit`,
  dependentsOf: `
    SELECT t.id, t.action, t.status, t.pending_deps
      FROM task_deps e INDEXED BY task_deps_dep JOIN tasks t ON t.seq = e.task_seq
     WHERE e.dep_seq = @seq ORDER BY e.task_seq LIMIT @limit`,
  /** A graph's children: the node columns only (tasks_parent). */
  childNodesOf: `
    SELECT id, action, status, pending_deps FROM tasks INDEXED BY tasks_parent
     WHERE parent_id = @parentId ORDER BY seq LIMIT @limit`,
  /** How many of each list a graph has, counted in the index up to @limit. */
  countDependencies: `SELECT count(*) AS n FROM (SELECT 1 FROM task_deps WHERE task_seq = @seq LIMIT @limit)`,
  countDependents: `
    SELECT count(*) AS n FROM (SELECT 1 FROM task_deps INDEXED BY task_deps_dep WHERE dep_seq = @seq LIMIT @limit)`,
  countChildren: `
    SELECT count(*) AS n FROM (SELECT 1 FROM tasks INDEXED BY tasks_parent WHERE parent_id = @parentId LIMIT @limit)`,
  childrenOf: `SELECT ${LISTED_COLUMNS} FROM tasks INDEXED BY tasks_parent WHERE parent_id = @parentId ORDER BY seq LIMIT @limit`,
  lockLeased: `
    SELECT seq, id, dep_failure_runs FROM tasks
     WHERE seq = @seq AND status = 'running' AND lease_owner = @owner AND attempts = @attempt`,
  lockChildren: `
    SELECT seq, id, status, error FROM tasks INDEXED BY tasks_parent WHERE parent_id = @parentId ORDER BY seq`,
  /** The first of @seqs (a JSON array) that depends on task @seq, directly or through others. */
  dependentAmong: `
    WITH RECURSIVE d(seq) AS (
      SELECT task_seq FROM task_deps WHERE dep_seq = @seq
      UNION SELECT e.task_seq FROM task_deps e JOIN d ON e.dep_seq = d.seq)
    SELECT seq FROM d WHERE seq IN (SELECT value FROM json_each(@seqs)) LIMIT 1`,
  markDependents: `UPDATE tasks SET has_dependents = 1 WHERE seq IN (SELECT value FROM json_each(@seqs))`,
  /** See postgres/queries.ts waitForChildren. */
  waitForChildren: `
    UPDATE tasks
       SET status = @status, pending_deps = @pending, waits = waits + 1,
           attempts = CASE WHEN @status = 'failed' THEN attempts ELSE attempts - 1 END,
           error = @error, processed_at = CASE WHEN @status = 'failed' THEN @now END,
           run_at = CASE WHEN @status = 'queued' THEN @now ELSE run_at END,
           lease_owner = NULL, lease_expires_at = NULL, claimed_at = NULL, started_at = NULL
     WHERE seq = @seq AND status = 'running' AND lease_owner = @owner AND attempts = @attempt`,
  requestCancel: `UPDATE tasks SET cancel_requested = 1 WHERE seq = @seq AND status = 'running'`,

  retryTask: `
    UPDATE tasks
       SET status = 'queued', attempts = 0, run_at = @now, error = NULL, result = NULL, cancel_requested = 0,
           claimed_at = NULL, started_at = NULL, processed_at = NULL, progress = NULL, progress_message = NULL
     WHERE seq = @seq AND status IN (${statusList(RETRYABLE_STATUSES)})`,

  /** @seqs (JSON): those of them a retry takes, as they ended (their cascade's key). */
  retryableOf: `
    SELECT seq, id, status, error, has_dependents FROM tasks
     WHERE seq IN (SELECT value FROM json_each(@seqs)) AND status IN (${statusList(RETRYABLE_STATUSES)})`,
  /** See postgres/queries.ts: the re-block walk (shared/graph.ts). */
  failedDependentsOf: `
    SELECT e.dep_seq AS dep, t.seq, t.id, t.status, t.error
      FROM task_deps e INDEXED BY task_deps_dep JOIN tasks t ON t.seq = e.task_seq
     WHERE e.dep_seq IN (SELECT value FROM json_each(@seqs)) AND t.status IN ('failed', 'cancelled')`,
  dependenciesOfSeqs: `
    SELECT e.task_seq AS task, t.seq, t.id, t.status, t.error FROM task_deps e JOIN tasks t ON t.seq = e.dep_seq
     WHERE e.task_seq IN (SELECT value FROM json_each(@seqs))`,
  unmetEdge: `UPDATE task_deps SET met = 0 WHERE task_seq = @task AND dep_seq = @dep`,
  /**
   * One row of a retry's cascade: @reopen 1 blocks it again (error and processed_at cleared),
   * else @status and @error (NULL: unchanged); the pending count is recounted from its edges.
   */
  reblockTask: `
    UPDATE tasks
       SET status = CASE WHEN @reopen = 1 THEN 'blocked' ELSE coalesce(@status, status) END,
           error = CASE WHEN @reopen = 1 THEN NULL WHEN @status IS NOT NULL THEN @error ELSE error END,
           processed_at = CASE WHEN @reopen = 1 THEN NULL ELSE processed_at END,
           pending_deps = (SELECT count(*) FROM task_deps e WHERE e.task_seq = @seq AND e.met = 0)
     WHERE seq = @seq
    RETURNING id, status`,

  setProgress: `
    UPDATE tasks SET progress = @progress, progress_message = @message
     WHERE seq = @seq AND status = 'running' AND lease_owner = @owner AND attempts = @attempt`,

  pruneTasks: `
    DELETE FROM tasks WHERE seq IN (
      SELECT seq FROM tasks WHERE status = 'completed' AND processed_at < @completed
      UNION ALL SELECT seq FROM tasks WHERE status = 'failed' AND processed_at < @failed
      UNION ALL SELECT seq FROM tasks WHERE status = 'cancelled' AND processed_at < @cancelled
      LIMIT @limit)`,

  countPrunableTasks: `
    SELECT (SELECT count(*) FROM tasks WHERE status = 'completed' AND processed_at < @completed)
         + (SELECT count(*) FROM tasks WHERE status = 'failed' AND processed_at < @failed)
         + (SELECT count(*) FROM tasks WHERE status = 'cancelled' AND processed_at < @cancelled) AS n`,

  ping: `SELECT 1`,

  // Nodes (migration 0009): a heartbeat is an upsert of the node's row; the same write deletes
  // rows of nodes last heard of before @pruneBefore, so the table holds the last hour's nodes.
  heartbeatNode: `
    INSERT INTO taskq_nodes (id, host, pid, role, version, started_at, heartbeat_at, heartbeat_ms,
                             concurrency, running, buffered, tasks, stopped_at)
    VALUES (@id, @host, @pid, @role, @version, @startedAt, @now, @heartbeatMs, @concurrency,
            @running, @buffered, @tasks, NULL)
    ON CONFLICT (id) DO UPDATE SET
      heartbeat_at = excluded.heartbeat_at, heartbeat_ms = excluded.heartbeat_ms,
      concurrency = excluded.concurrency, running = excluded.running, buffered = excluded.buffered,
      tasks = excluded.tasks, stopped_at = NULL`,
  pruneNodes: `DELETE FROM taskq_nodes WHERE coalesce(stopped_at, heartbeat_at) < @pruneBefore`,
  stopNode: `UPDATE taskq_nodes SET stopped_at = @now, running = 0, buffered = 0, tasks = '[]' WHERE id = @id`,
  /** The whole table: it holds at most the nodes of the last hour. */
  listNodes: `
    SELECT * FROM taskq_nodes WHERE coalesce(stopped_at, heartbeat_at) >= @since ORDER BY started_at, id`,

  // Stats from the counters that migration 0004's triggers keep (docs/stats.md): the cost does
  // not grow with the table.
  countsFromCounters: `
    SELECT action, blocked, queued, running, completed, failed, cancelled FROM task_counts ORDER BY action`,
  /** The queued task inserted first: the head of the queued range of tasks_status_seq. */
  oldestQueuedBySeq: `
    SELECT created_at AS t FROM tasks INDEXED BY tasks_status_seq
     WHERE status = 'queued' ORDER BY seq LIMIT 1`,
  /** Whole minutes, from the one holding @since. */
  throughputFromRollup: `
    SELECT minute, completed, failed FROM task_throughput
     WHERE minute >= (CAST(@since AS INTEGER) / 60000) * 60000 AND completed + failed > 0
     ORDER BY minute`,

  // The operator's console (migration 0011, docs/operations.md).
  /** A pause keeps its first time: pausing again changes nothing. */
  pauseAction: `
    INSERT INTO taskq_paused_actions (action, paused_at) VALUES (@action, @now)
      ON CONFLICT (action) DO NOTHING`,
  pausedAction: `SELECT action, paused_at FROM taskq_paused_actions WHERE action = @action`,
  resumeAction: `DELETE FROM taskq_paused_actions WHERE action = @action`,
  pausedActions: `SELECT action, paused_at FROM taskq_paused_actions ORDER BY action`,
  /** How many tasks of the action wait queued (the counters): who to wake on a resume. */
  queuedOfAction: `SELECT queued FROM task_counts WHERE action = @action`,
  /** The per-action ring's minutes from the one holding @since (at most 60 rows per action). */
  actionMinutes: `
    SELECT action, minute, completed, failed, ${RUN_BUCKET_COLUMNS.join(', ')} FROM task_action_minutes
     WHERE minute >= (CAST(@since AS INTEGER) / 60000) * 60000 AND completed + failed > 0
     ORDER BY action, minute`,
  /** Per action with queued tasks (the counters say which), its oldest: one seek in tasks_queued_action. */
  oldestQueuedByAction: `
    SELECT c.action, (SELECT created_at FROM tasks INDEXED BY tasks_queued_action
                       WHERE status = 'queued' AND action = c.action ORDER BY seq LIMIT 1) AS t
      FROM task_counts c WHERE c.queued > 0`,
  scheduleStates: `SELECT name, paused_at, last_run_at, last_task_id FROM taskq_schedules ORDER BY name`,
  scheduleState: `SELECT name, paused_at, last_run_at, last_task_id FROM taskq_schedules WHERE name = @name`,
  /** @now when pausing (an earlier pause keeps its time), NULL when resuming. */
  setSchedulePaused: `
    INSERT INTO taskq_schedules (name, paused_at) VALUES (@name, @pausedAt)
      ON CONFLICT (name) DO UPDATE SET
        paused_at = CASE WHEN excluded.paused_at IS NULL THEN NULL
                         ELSE coalesce(taskq_schedules.paused_at, excluded.paused_at) END`,
  /** The latest run wins, whatever order nodes record them in. */
  recordScheduleRun: `
    INSERT INTO taskq_schedules (name, last_run_at, last_task_id) VALUES (@name, @at, @taskId)
      ON CONFLICT (name) DO UPDATE SET
        last_task_id = CASE WHEN excluded.last_run_at >= coalesce(taskq_schedules.last_run_at, 0)
                            THEN excluded.last_task_id ELSE taskq_schedules.last_task_id END,
        last_run_at = max(coalesce(taskq_schedules.last_run_at, 0), excluded.last_run_at)`,

  // The audit log (migration 0012, queue/audit.ts): a page newest first from the index its
  // filters name, and pruning by time.
  insertAuditEntry: `
    INSERT INTO taskq_audit_log (at, token, method, route, action, target, detail, status)
    VALUES (@at, @token, @method, @route, @action, @target, @detail, @status)`,
  listAudit: `
    SELECT * FROM taskq_audit_log WHERE seq < @beforeSeq ORDER BY seq DESC LIMIT @limit`,
  listAuditByToken: `
    SELECT * FROM taskq_audit_log INDEXED BY taskq_audit_log_token
     WHERE token = @token AND seq < @beforeSeq ORDER BY seq DESC LIMIT @limit`,
  listAuditByAction: `
    SELECT * FROM taskq_audit_log INDEXED BY taskq_audit_log_action
     WHERE action = @action AND seq < @beforeSeq ORDER BY seq DESC LIMIT @limit`,
  listAuditByTokenAction: `
    SELECT * FROM taskq_audit_log INDEXED BY taskq_audit_log_token_action
     WHERE token = @token AND action = @action AND seq < @beforeSeq ORDER BY seq DESC LIMIT @limit`,
  pruneAudit: `
    DELETE FROM taskq_audit_log WHERE seq IN (
      SELECT seq FROM taskq_audit_log INDEXED BY taskq_audit_log_at WHERE at < @before LIMIT @limit)`,
} as const;

/** Columns each inserted row binds, in order (see insertTasksSql). */
export const INSERT_COLUMNS = 13;

/**
 * An INSERT of `rows` tasks in one statement: one statement per batch pays the per-statement work
 * (bind, step, reset) once per batch instead of once a row. Parameters are positional: binding by
 * name costs a lookup per parameter per row. `npm run bench` measures the insert path.
 */
export function insertTasksSql(rows: number): string {
  const row = `(?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
  return `INSERT INTO tasks (seq, id, action, data, status, priority, run_at, max_attempts, unique_key, unique_until, concurrency_key, created_at,
                     traceparent, tracestate)
    VALUES ${Array.from({ length: rows }, () => row).join(', ')}`;
}

/** Which index each walk of shared/list-filter.ts takes; named, since the planner has no statistics. */
const LIST_INDEXES: Record<ListIndex, (query: ListQuery) => string> = {
  seq: () => 'FROM tasks',
  status: () => 'FROM tasks INDEXED BY tasks_status_seq',
  action: () => 'FROM tasks INDEXED BY tasks_action_seq',
  // The partial (action, seq) index of the status (migration 0010).
  statusAction: (query) => {
    const status = query.driving.find((c) => c.kind === 'status')?.value;
    return `FROM tasks INDEXED BY tasks_${String(status)}_action`;
  },
  ids: () => 'FROM tasks',
};

/** A JSON path of data (`$."a"."b"`): segments are letters, digits, _ and - (core/filter.ts). */
const jsonPath = (path: readonly string[]) => `$${path.map((p) => `."${p}"`).join('')}`;

/**
 * The filter conditions in SQLite (shared/list-filter.ts renders the statement). A status is
 * written as a literal (one of TASK_STATUSES), so the planner can match a partial index.
 * `data -> path` is the field's compact JSON text, compared with the JSON text of the value.
 */
export const LIST_DIALECT: ListDialect = {
  columns: LISTED_COLUMNS,
  from: (query) => LIST_INDEXES[query.index](query),
  placeholder: () => '?',
  condition(c: DialectCondition, bind) {
    switch (c.kind) {
      case 'status':
        return `status = ${statusList([c.value])}`;
      case 'seqs':
        return `seq IN (SELECT value FROM json_each(${bind(JSON.stringify(c.value))}))`;
      case 'ids':
        return `id IN (SELECT value FROM json_each(${bind(JSON.stringify(c.value))}))`;
      case 'idPrefix':
        return `substr(id, 1, ${bind(c.value.length)}) = ${bind(c.value)}`;
      case 'data':
        return `data -> ${bind(jsonPath(c.path))} = ${bind(c.json)}`;
      case 'error':
        return `instr(error, ${bind(c.value)}) > 0`;
    }
  },
};

/**
 * Bulk operations (POST /tasks/bulk; shared/bulk-step.ts says what a step does). The changes
 * take @seqs, a JSON array of the step's tasks, and guard on status; the operation's row is
 * read and written by id.
 */
const BULK_SEQS = 'seq IN (SELECT value FROM json_each(@seqs))';
export const BULK_SQL = {
  bulkRetry: `
    UPDATE tasks
       SET status = 'queued', attempts = 0, run_at = @now, error = NULL, result = NULL, cancel_requested = 0,
           claimed_at = NULL, started_at = NULL, processed_at = NULL, progress = NULL, progress_message = NULL
     WHERE ${BULK_SEQS} AND status IN (${statusList(RETRYABLE_STATUSES)})
    RETURNING id, action`,
  bulkCancelQueued: `
    UPDATE tasks SET status = 'cancelled', processed_at = @now, error = 'cancelled by request'
     WHERE ${BULK_SEQS} AND status = 'queued'
    RETURNING id`,
  bulkRequestCancel: `
    UPDATE tasks SET cancel_requested = 1 WHERE ${BULK_SEQS} AND status = 'running' AND cancel_requested = 0
    RETURNING id`,
  bulkDelete: `DELETE FROM tasks WHERE ${BULK_SEQS} AND status IN (${statusList(BULK_STATUSES.delete)}) RETURNING id`,
  maxTaskSeq: `SELECT coalesce(max(seq), 0) AS seq FROM tasks`,
  operationByIdempotencyKey: `SELECT * FROM taskq_operations WHERE idempotency_key = @key`,
  runningOperationByRequest: `SELECT * FROM taskq_operations WHERE request_key = @requestKey AND status = 'running'`,
  insertOperation: `
    INSERT INTO taskq_operations (id, op, filter, request_key, idempotency_key, created_by, status, matched,
                                  matched_exact, max_seq, created_at, updated_at)
    VALUES (@id, @op, @filter, @requestKey, @idempotencyKey, @createdBy, 'running', @matched,
            @matchedExact, @maxSeq, @now, @now)
    RETURNING *`,
  getOperation: `SELECT * FROM taskq_operations WHERE id = @id`,
  /** A running operation whose lease is free or expired (taskq_operations_lease holds only running ones). */
  claimOperation: `
    UPDATE taskq_operations SET lease_owner = @owner, lease_expires_at = @leaseUntil, updated_at = @now
     WHERE id = (SELECT id FROM taskq_operations INDEXED BY taskq_operations_lease
                  WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < @now)
                  LIMIT 1)
    RETURNING *`,
  heldOperation: `SELECT * FROM taskq_operations WHERE id = @id AND lease_owner = @owner AND status = 'running'`,
  /** @finished 1: the last step; the counts become what the operation found. */
  advanceOperation: `
    UPDATE taskq_operations
       SET done = done + @done, skipped = skipped + @skipped, cursor = @cursor, status = @status,
           matched = CASE WHEN @finished THEN done + @done + skipped + @skipped
                          ELSE max(matched, done + @done + skipped + @skipped) END,
           matched_exact = matched_exact OR @finished,
           lease_owner = CASE WHEN @finished THEN NULL ELSE lease_owner END,
           lease_expires_at = CASE WHEN @finished THEN NULL ELSE @leaseUntil END,
           updated_at = @now, finished_at = CASE WHEN @finished THEN @now END
     WHERE id = @id
    RETURNING *`,
  operationError: `
    UPDATE taskq_operations SET errors = errors + 1, last_error = @error, updated_at = @now
     WHERE id = @id AND lease_owner = @owner`,
  releaseOperation: `
    UPDATE taskq_operations SET lease_owner = NULL, lease_expires_at = NULL
     WHERE id = @id AND lease_owner = @owner AND status = 'running'`,
} as const;

/** Every named statement of the driver. */
export const SQL = { ...TASK_SQL, ...BULK_SQL } as const;
export type QueryName = keyof typeof SQL;
