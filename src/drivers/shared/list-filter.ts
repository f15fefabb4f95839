/**
 * How a task filter (core/filter.ts) is read, in a neutral form: which index walks the tasks
 * newest first (`index`, with the `driving` conditions it answers) and which conditions are
 * checked on each row it yields (`residual`). Each driver renders the conditions in its own SQL
 * (queries.ts, a ListDialect) and caches the statement under `key`, so there is one statement
 * per combination of conditions, not per call.
 *
 * The policy: a page never reads the whole table. Without residual conditions the walk stops
 * after `limit` rows. With them the walk is a *scan window*: at most `window` rows of the index
 * are examined; a page that is not full by then ends there, and its cursor continues below the
 * last row examined (`scans: true` in the answer). Whole ids are found by their key.
 */
import { filterResiduals, type TaskFilter } from '../../core/filter.js';
import type { TaskStatus } from '../../core/task.js';
import type { ListTasksParams } from '../driver.js';

/** The walks: by seq (the primary key), by (status, seq), (action, seq), a status's (action, seq), or a task's key. */
export type ListIndex = 'seq' | 'status' | 'action' | 'statusAction' | 'ids';

export type Condition =
  | { kind: 'status'; value: TaskStatus }
  | { kind: 'action'; value: string }
  | { kind: 'beforeSeq'; value: number }
  | { kind: 'maxSeq'; value: number }
  | { kind: 'seqs'; value: number[] }
  | { kind: 'ids'; value: string[] }
  | { kind: 'idPrefix'; value: string }
  | { kind: 'data'; path: string[]; json: string }
  | { kind: 'error'; value: string }
  | { kind: 'createdAfter' | 'createdBefore' | 'finishedAfter' | 'finishedBefore'; value: number };
export type ConditionKind = Condition['kind'];

/** Rows a scan window examines at most, unless the caller says otherwise. */
export const SCAN_WINDOW_DEFAULT = 5000;

export interface ListQuery {
  index: ListIndex;
  /** Answered by the index: they bound the walk. */
  driving: Condition[];
  /** Checked on each row of the walk. */
  residual: Condition[];
  /** Whether the walk is a bounded scan window (residual conditions on an index walk). */
  scans: boolean;
  /** Rows examined at most when scanning. */
  window: number;
  limit: number;
  /** Names the combination of conditions (the statement cache key). */
  key: string;
}

/** Every condition a filter sets, in a fixed order. */
function conditionsOf(filter: TaskFilter): Condition[] {
  const out: Condition[] = [];
  if (filter.status) out.push({ kind: 'status', value: filter.status });
  if (filter.action !== undefined) out.push({ kind: 'action', value: filter.action });
  if (filter.idPrefix !== undefined) out.push({ kind: 'idPrefix', value: filter.idPrefix });
  for (const d of filter.data ?? []) out.push({ kind: 'data', path: d.path, json: d.json });
  if (filter.error !== undefined) out.push({ kind: 'error', value: filter.error });
  for (const kind of ['createdAfter', 'createdBefore', 'finishedAfter', 'finishedBefore'] as const) {
    const value = filter[kind];
    if (value !== undefined) out.push({ kind, value });
  }
  return out;
}

/**
 * The walk for `params`. `decodeId` gives the seqs a whole id may encode (task-ids.ts): a
 * filter on whole ids reads those rows by key (ids issued before the ids encoded seqs, kept in
 * taskq_legacy_ids, are not found this way).
 */
export function listQuery(
  params: ListTasksParams,
  decodeId: (id: string) => number[],
  actionIndexed: readonly TaskStatus[],
): ListQuery {
  // An empty status or action filters nothing, as before.
  const filter: TaskFilter = { ...params.filter };
  if (params.status) filter.status = params.status;
  if (params.action) filter.action = params.action;
  const all = conditionsOf(filter);
  const bounds: Condition[] = [];
  if (params.beforeSeq !== undefined) bounds.push({ kind: 'beforeSeq', value: params.beforeSeq });
  if (params.maxSeq !== undefined) bounds.push({ kind: 'maxSeq', value: params.maxSeq });
  const window = params.scanWindow ?? SCAN_WINDOW_DEFAULT;
  const made = (
    index: ListIndex,
    driving: Condition[],
    residual: Condition[],
    scans: boolean,
  ): ListQuery => ({
    index,
    driving: [...driving, ...bounds],
    residual,
    scans,
    window,
    limit: params.limit,
    // A status is a literal in the SQL (a partial index must see it), so it is part of the key.
    key: [index, ...driving, ...bounds, '|', ...residual]
      .map((c) => (typeof c === 'string' ? c : c.kind === 'status' ? `status=${c.value}` : c.kind))
      .join(','),
  });
  if (filter.ids) {
    const seqs = filter.ids.flatMap(decodeId);
    const byKey: Condition[] = [
      { kind: 'seqs', value: seqs },
      { kind: 'ids', value: filter.ids },
    ];
    return made('ids', byKey, all, false);
  }
  const residualKinds = new Set<string>(filterResiduals(filter, actionIndexed));
  const residual = all.filter((c) => residualKinds.has(c.kind));
  const driving = all.filter((c) => !residualKinds.has(c.kind));
  const kinds = new Set(driving.map((c) => c.kind));
  const index: ListIndex =
    kinds.has('status') && kinds.has('action')
      ? 'statusAction'
      : kinds.has('status')
        ? 'status'
        : kinds.has('action')
          ? 'action'
          : 'seq';
  return made(index, driving, residual, residual.length > 0);
}

/** The conditions whose SQL is a plain comparison, the same in both dialects: column and operator. */
export const PLAIN_COMPARISONS: Partial<Record<ConditionKind, string>> = {
  action: 'action =',
  beforeSeq: 'seq <',
  maxSeq: 'seq <=',
  createdAfter: 'created_at >=',
  createdBefore: 'created_at <',
  finishedAfter: 'processed_at >=',
  finishedBefore: 'processed_at <',
};

/** The conditions a dialect writes itself (the rest are PLAIN_COMPARISONS). */
export type DialectCondition = Extract<
  Condition,
  { kind: 'status' | 'seqs' | 'ids' | 'idPrefix' | 'data' | 'error' }
>;

/** What a driver supplies to render a ListQuery in its SQL (queries.ts). */
export interface ListDialect {
  /** `FROM tasks` with the index hint of the walk (SQLite names it; PostgreSQL plans it). */
  from(query: ListQuery): string;
  /** The condition, binding its values through `bind` (which returns the placeholder). */
  condition(c: DialectCondition, bind: (value: unknown) => string): string;
  /** The placeholder of the next bound value. */
  placeholder(n: number): string;
  /** The columns a page of rows selects: every one but attempt_history (GET /tasks/:id has it). */
  columns: string;
  /**
   * `column = value` written so that only an index leading with the column gives the walk's order
   * (PostgreSQL: a range, queries.ts SEEK_EQUAL says why); the walk is then ordered by the column,
   * then seq. Absent: an equality, ordered by seq (SQLite names the index instead).
   */
  seekEqual?: (column: string, value: string) => string;
  /**
   * Set where one index serves every walk by status, by action or by both (PostgreSQL, migration
   * 0014), with seekEqual for the action: every such walk is ordered `BY order`; one by a single
   * column reads each value of the other (`branches`: a FROM item aliased `b`, and the condition
   * that ties a row to it) newest first and merges them, so each branch stops after the walk's
   * limit. Absent: each walk has its own index.
   */
  keyIndex?: { order: string; branches: Record<'action' | 'status', { from: string; match: string }> };
}

/** The column each index walk leads with (seq and ids walks lead with the key). */
const LEADING_COLUMN: Partial<Record<ListIndex, 'status' | 'action'>> = {
  status: 'status',
  action: 'action',
  statusAction: 'action',
};

/** With a keyIndex, the column whose values a walk by the other one merges over. */
const MERGED_OVER: Partial<Record<ListIndex, 'status' | 'action'>> = { status: 'action', action: 'status' };

/** What a statement selects: the rows, their seqs, the count of matches, or how far the window reached. */
export type ListShape = 'rows' | 'seqs' | 'count' | 'windowEnd';

export interface RenderedList {
  sql: string;
  values: unknown[];
}

/**
 * The statement of `query` in `dialect`, newest first. The shape of the SQL is the same in both
 * dialects: a scan window is a subquery of at most `window` rows of the index walk, filtered by
 * the residual conditions outside it (both databases read such a subquery lazily, so a full page
 * stops the walk early). `windowEnd` counts the window's rows and finds its last seq, from the
 * index alone; `count` counts the matches in the window (or, without a window, up to `limit`).
 */
export function renderList(query: ListQuery, dialect: ListDialect, shape: ListShape): RenderedList {
  const values: unknown[] = [];
  const bind = (value: unknown) => {
    values.push(value);
    return dialect.placeholder(values.length);
  };
  const { seekEqual } = dialect;
  const lead = seekEqual && query.driving.find((c) => c.kind === LEADING_COLUMN[query.index]);
  const keyIndex = query.index in LEADING_COLUMN ? dialect.keyIndex : undefined;
  // With the key index the status is an equality (its first column), the action a seek.
  const sought = (c: Condition) => (keyIndex ? c.kind === 'action' : c === lead);
  const sqlOf = (c: Condition) => {
    if (sought(c) && seekEqual && 'value' in c) return seekEqual(c.kind, bind(c.value));
    const plain = PLAIN_COMPARISONS[c.kind];
    return plain && 'value' in c
      ? `${plain} ${bind(c.value)}`
      : dialect.condition(c as DialectCondition, bind);
  };
  const where = (conds: Condition[]) =>
    conds.length === 0 ? '' : ` WHERE ${conds.map(sqlOf).join(' AND ')}`;
  const order = lead ? `${lead.kind} DESC, seq DESC` : 'seq DESC';
  /** The walk's first `limit` rows (bound after the walk's conditions: SQLite's are positional). */
  const walk = (columns: string, conds: Condition[], limit: number | string): string => {
    const own = where(conds);
    const n = typeof limit === 'string' ? limit : bind(limit);
    if (!keyIndex) return `SELECT ${columns} ${dialect.from(query)}${own} ORDER BY ${order} LIMIT ${n}`;
    const other = MERGED_OVER[query.index];
    if (!other) return `SELECT ${columns} ${dialect.from(query)}${own} ORDER BY ${keyIndex.order} LIMIT ${n}`;
    // The branches read seqs only (from the index alone), merged newest first; the rows of the
    // first `limit` are then read by key, in that order, as far as the caller reads them.
    // `own` holds the walk's own key (status or action), so it is never empty here.
    const branch = keyIndex.branches[other];
    const merged = `SELECT t.seq FROM ${branch.from}
                    CROSS JOIN LATERAL (SELECT seq ${dialect.from(query)}${own} AND ${branch.match}
                                         ORDER BY ${keyIndex.order} LIMIT ${n}) t
                    ORDER BY t.seq DESC LIMIT ${n}`;
    if (columns === 'seq') return merged;
    return `SELECT ${columns} FROM (${merged}) w JOIN tasks USING (seq) ORDER BY seq DESC`;
  };
  const columns = shape === 'rows' ? dialect.columns : 'seq';
  if (shape === 'windowEnd') {
    const inner = walk('seq', query.driving, query.window);
    return { sql: `SELECT count(*) AS n, min(seq) AS last FROM (${inner}) w`, values };
  }
  if (!query.scans) {
    const conds = [...query.driving, ...query.residual];
    if (shape === 'count') {
      const inner = walk('seq', conds, query.limit);
      return { sql: `SELECT count(*) AS n FROM (${inner}) w`, values };
    }
    return { sql: walk(columns, conds, query.limit), values };
  }
  const inner = walk('*', query.driving, query.window);
  const outerWhere = where(query.residual);
  if (shape === 'count') return { sql: `SELECT count(*) AS n FROM (${inner}) w${outerWhere}`, values };
  return {
    sql: `SELECT ${columns} FROM (${inner}) w${outerWhere} ORDER BY seq DESC LIMIT ${bind(query.limit)}`,
    values,
  };
}
