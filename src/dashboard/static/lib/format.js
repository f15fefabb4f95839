// Formatting of numbers, times and values for display.

/** @typedef {import('./types.js').Task} Task */

/** @param {number | null | undefined} ms */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

/** @param {string | null | undefined} iso */
export function ago(iso) {
  if (!iso) return '–';
  const ms = Date.now() - Date.parse(iso);
  if (ms < 0) return `in ${duration(-ms)}`;
  return ms < 1000 ? 'just now' : `${duration(ms).split(' ').slice(0, 2).join(' ')} ago`;
}

/** @param {number} n */
export const number = (n) => new Intl.NumberFormat().format(n);
/** @param {unknown} value */
export const json = (value) => (value === null || value === undefined ? '—' : JSON.stringify(value, null, 2));
/** 'queued' -> 'Queued' @param {string} word */
export const label = (word) => word.charAt(0).toUpperCase() + word.slice(1);
/** @param {string | null | undefined} iso */
export const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
/** @param {unknown} err */
export const messageOf = (err) => (err instanceof Error ? err.message : String(err));

/** Claimed by a worker that has no free slot yet: the handler has not started. @param {Task} task */
export const waitingForSlot = (task) => task.status === 'running' && task.started_at === null;
