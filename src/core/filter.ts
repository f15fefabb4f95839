/**
 * The one task filter grammar: GET /tasks takes it as its query string, POST /tasks/bulk as its
 * `filter` object, the dashboard keeps it in its URL and the CLI builds it from its flags. Every
 * one of them is the same flat set of `key=value` pairs, described once in FILTER_FIELDS and
 * parsed once by parseFilter:
 *
 *   status=failed  action=send-email  id=0f94  data.user_id=42  error=timeout
 *   created_after=2026-12-01T00:00:00Z  created_before=...  finished_after=...  finished_before=...
 *
 * Which of them an index answers is decided in drivers/shared/list-filter.ts; `filterScans`
 * says whether a filter needs the bounded scan window there (docs/api.md, "Filters").
 */
import { unknownName } from './config.js';
import { QueueError } from './errors.js';
import { TASK_STATUSES, type TaskStatus } from './task.js';

/** `data.<path>` must equal this JSON value (compared as its compact JSON text). */
export interface DataCondition {
  /** The field's path in `data`: `data.user.id` is ['user', 'id']. */
  path: string[];
  /** JSON.stringify of the value the field must equal. */
  json: string;
}

/** A parsed filter; every field absent means every task. Times are epoch ms (after: >=, before: <). */
export interface TaskFilter {
  status?: TaskStatus;
  action?: string;
  /** A prefix of the id, lower case (not a whole id: those are `ids`). */
  idPrefix?: string;
  /** Whole ids, lower case: found by their key (the id encodes it), not by a scan. */
  ids?: string[];
  data?: DataCondition[];
  /** Text the task's error contains (case-sensitive). */
  error?: string;
  createdAfter?: number;
  createdBefore?: number;
  finishedAfter?: number;
  finishedBefore?: number;
}

type TimeKey = 'createdAfter' | 'createdBefore' | 'finishedAfter' | 'finishedBefore';

/** One key of the grammar, as every surface shows it. */
export interface FilterField {
  /** The key in query strings, filter objects and dashboard URLs (`data.<field>` is a pattern). */
  key: string;
  /** The CLI flag (commander syntax). */
  flag: string;
  description: string;
  /** Answered by an index; the others narrow a bounded scan (docs/api.md, "Filters"). */
  indexed: boolean;
  example: string;
}

export const DATA_PREFIX = 'data.';
export const ACTION_FILTER_MAX = 128;
export const ERROR_FILTER_MAX = 200;
export const DATA_VALUE_MAX = 200;
/** At most this many `data.` conditions in one filter. */
export const DATA_CONDITIONS_MAX = 5;
/** At most this many whole ids in one `id=` (the dashboard's selected rows). */
export const IDS_MAX = 1000;
const DATA_PATH_MAX_DEPTH = 4;
const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;
const ID_PREFIX = /^[0-9a-f-]{1,36}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const TIME_FIELDS: { key: string; field: TimeKey; description: string }[] = [
  { key: 'created_after', field: 'createdAfter', description: 'created at or after this time' },
  { key: 'created_before', field: 'createdBefore', description: 'created before this time' },
  { key: 'finished_after', field: 'finishedAfter', description: 'finished at or after this time' },
  { key: 'finished_before', field: 'finishedBefore', description: 'finished before this time' },
];

export const FILTER_FIELDS: readonly FilterField[] = [
  {
    key: 'status',
    flag: '--status <status>',
    description: `one of ${TASK_STATUSES.join(', ')}`,
    indexed: true,
    example: 'failed',
  },
  {
    key: 'action',
    flag: '--action <action>',
    description: 'only this action',
    indexed: true,
    example: 'send-email',
  },
  {
    key: 'id',
    flag: '--id <prefix>',
    description: 'ids starting with this; or whole ids, comma-separated (found by key)',
    indexed: false,
    example: '0f948bfc',
  },
  {
    key: 'data.<field>',
    flag: '--data <field=value...>',
    description:
      'data.<field> equals <value> (a JSON number, true, false, null or "quoted" string, else the text); nested fields with dots; repeatable',
    indexed: false,
    example: 'user_id=42',
  },
  {
    key: 'error',
    flag: '--error <text>',
    description: 'the error contains this text',
    indexed: false,
    example: 'timeout',
  },
  ...TIME_FIELDS.map((t) => ({
    key: t.key,
    flag: `--${t.key.replace('_', '-')} <time>`,
    description: `${t.description} (ISO 8601, or epoch ms)`,
    indexed: false,
    example: '2026-12-01T00:00:00Z',
  })),
];

/** The plain keys (every one but the data pattern). */
export const FILTER_KEYS: readonly string[] = FILTER_FIELDS.map((f) => f.key).filter(
  (k) => !k.startsWith(DATA_PREFIX),
);

const bad = (message: string) => new QueueError('TQ_ERR_VALIDATION', message);

/** Query strings give strings (an array for a repeated key); filter objects may give numbers too. */
function textOf(value: unknown, at: string): string {
  if (Array.isArray(value)) throw bad(`${at} is given more than once`);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (typeof value !== 'string') throw bad(`${at} must be a string`);
  if (value.includes('\u0000')) throw bad(`${at} must not contain NUL (\\u0000) characters`);
  return value;
}

function timeOf(text: string, at: string): number {
  const t = /^\d{1,16}$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(t)) throw bad(`${at} must be an ISO 8601 time or epoch milliseconds, got "${text}"`);
  return t;
}

/** The JSON text a `data.` value stands for: a JSON scalar as written, anything else as a string. */
export function dataValueJson(text: string): string {
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || ['number', 'boolean', 'string'].includes(typeof value))
      return JSON.stringify(value);
  } catch {
    // not JSON: the text itself
  }
  return JSON.stringify(text);
}

/**
 * Parses the grammar's pairs (a query string's or a filter object's); throws TQ_ERR_VALIDATION
 * (400) naming `where` and the key. `skip` names keys that belong to the caller (limit, cursor).
 */
export function parseFilter(
  input: Record<string, unknown>,
  where: string,
  skip: readonly string[] = [],
): TaskFilter {
  const filter: TaskFilter = {};
  for (const [key, raw] of Object.entries(input)) {
    if (skip.includes(key) || raw === undefined) continue;
    const at = `${where}/${key}`;
    const text = textOf(raw, at);
    if (key.startsWith(DATA_PREFIX)) {
      const path = key.slice(DATA_PREFIX.length).split('.');
      if (path.length > DATA_PATH_MAX_DEPTH || !path.every((s) => SEGMENT.test(s)))
        throw bad(
          `${at}: a data field is up to ${DATA_PATH_MAX_DEPTH} names of letters, digits, _ and -, joined by dots`,
        );
      if (text.length > DATA_VALUE_MAX) throw bad(`${at} must be at most ${DATA_VALUE_MAX} characters`);
      filter.data = [...(filter.data ?? []), { path, json: dataValueJson(text) }];
      if (filter.data.length > DATA_CONDITIONS_MAX)
        throw bad(`${where} may have at most ${DATA_CONDITIONS_MAX} data. conditions`);
      continue;
    }
    const time = TIME_FIELDS.find((t) => t.key === key);
    if (time) {
      filter[time.field] = timeOf(text, at);
      continue;
    }
    switch (key) {
      case 'status':
        if (!(TASK_STATUSES as readonly string[]).includes(text))
          throw bad(`${at} must be one of: ${TASK_STATUSES.join(', ')}`);
        filter.status = text as TaskStatus;
        break;
      case 'action':
        if (text.length < 1 || text.length > ACTION_FILTER_MAX)
          throw bad(`${at} must be 1 to ${ACTION_FILTER_MAX} characters`);
        filter.action = text;
        break;
      case 'id': {
        const parts = text.toLowerCase().split(',');
        if (parts.length === 1 && ID_PREFIX.test(parts[0] as string) && !UUID.test(parts[0] as string)) {
          filter.idPrefix = parts[0];
          break;
        }
        if (parts.length > IDS_MAX || !parts.every((p) => UUID.test(p)))
          throw bad(
            `${at} must be the start of a task id (hex digits and -), or up to ${IDS_MAX} whole ids separated by commas`,
          );
        filter.ids = [...new Set(parts)];
        break;
      }
      case 'error':
        if (text.length < 1 || text.length > ERROR_FILTER_MAX)
          throw bad(`${at} must be 1 to ${ERROR_FILTER_MAX} characters`);
        filter.error = text;
        break;
      default:
        throw bad(`${where}: ${unknownName('filter', key, [...FILTER_KEYS, 'data.<field>', ...skip])}`);
    }
  }
  for (const [after, before, name] of [
    ['createdAfter', 'createdBefore', 'created'],
    ['finishedAfter', 'finishedBefore', 'finished'],
  ] as const) {
    const a = filter[after];
    const b = filter[before];
    if (a !== undefined && b !== undefined && a >= b)
      throw bad(`${where}: ${name}_after must be earlier than ${name}_before`);
  }
  return filter;
}

/**
 * The filter as the grammar's pairs, keys sorted: what a URL, the CLI and the stored operation
 * carry, and (as JSON) what tells two bulk requests apart. parseFilter reads it back unchanged.
 */
export function filterToParams(filter: TaskFilter): Record<string, string> {
  const out: Record<string, string> = {};
  if (filter.status) out.status = filter.status;
  if (filter.action !== undefined) out.action = filter.action;
  if (filter.idPrefix !== undefined) out.id = filter.idPrefix;
  if (filter.ids?.length) out.id = [...filter.ids].sort().join(',');
  for (const d of filter.data ?? []) out[`${DATA_PREFIX}${d.path.join('.')}`] = d.json;
  if (filter.error !== undefined) out.error = filter.error;
  for (const t of TIME_FIELDS) {
    const value = filter[t.field];
    if (value !== undefined) out[t.key] = new Date(value).toISOString();
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Whether the filter needs the bounded scan (a condition no index answers): everything but
 * status, action (with status only where the driver's index holds it: `actionIndexed`, its
 * `capabilities.actionIndexedStatuses`) and whole ids.
 * drivers/shared/list-filter.ts decides the same way; this is what the API shows as `scans`.
 */
export function filterScans(filter: TaskFilter, actionIndexed: readonly TaskStatus[]): boolean {
  return filterResiduals(filter, actionIndexed).length > 0;
}

/**
 * The statuses whose tasks have an (action, seq) index of their own on SQLite (its migration
 * 0010); PostgreSQL's one key index covers every status (its migration 0014). A driver says which
 * in `capabilities.actionIndexedStatuses`.
 */
export const ACTION_INDEXED_STATUSES: readonly TaskStatus[] = ['failed', 'cancelled'];

export type Residual =
  | 'action'
  | 'idPrefix'
  | 'data'
  | 'error'
  | 'createdAfter'
  | 'createdBefore'
  | 'finishedAfter'
  | 'finishedBefore';

/** The conditions of `filter` that its index does not answer, so a scan must check them. */
export function filterResiduals(filter: TaskFilter, actionIndexed: readonly TaskStatus[]): Residual[] {
  const out: Residual[] = [];
  // Whole ids are read by key: the other conditions are checked on those few rows, no scan.
  if (filter.ids) return out;
  if (filter.status && filter.action !== undefined && !actionIndexed.includes(filter.status))
    out.push('action');
  if (filter.idPrefix !== undefined) out.push('idPrefix');
  if (filter.data?.length) out.push('data');
  for (const key of ['error', 'createdAfter', 'createdBefore', 'finishedAfter', 'finishedBefore'] as const)
    if (filter[key] !== undefined) out.push(key);
  return out;
}

/** Whether the filter sets nothing (every task matches). */
export const isEmptyFilter = (filter: TaskFilter): boolean =>
  Object.keys(filterToParams(filter)).length === 0;
