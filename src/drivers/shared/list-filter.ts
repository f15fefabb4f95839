/**
 * Which `listTasks` filters a call sets, in a neutral form: each driver renders it in its own
 * SQL (queries.ts) and caches the statement under `key`, so there is one statement per
 * combination of filters, not per call.
 */
import type { ListTasksParams } from '../driver.js';

/** The optional filters, in the order their values are bound (the limit comes last). */
export const LIST_FILTERS = ['status', 'action', 'beforeSeq'] as const;
export type ListFilter = (typeof LIST_FILTERS)[number];

export interface ListQuery {
  /** The filters set, in LIST_FILTERS order. */
  filters: ListFilter[];
  /** Their values, in the same order. */
  values: (string | number)[];
  limit: number;
  /** Names the combination of filters (the statement cache key). */
  key: string;
}

export function listQuery(params: ListTasksParams): ListQuery {
  // An empty status or action filters nothing, as before; a beforeSeq of 0 still filters.
  const set = (filter: ListFilter) =>
    filter === 'beforeSeq' ? params.beforeSeq !== undefined : !!params[filter];
  const filters = LIST_FILTERS.filter(set);
  const values = filters.map((f) => params[f] as string | number);
  return { filters, values, limit: params.limit, key: filters.join(',') };
}
