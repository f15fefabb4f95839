/**
 * The soak's rows, printed one at a time as they come, and the verdict on whether each series
 * stayed flat: after the warm-up rows, the median of the last third of the rows against the
 * median of the first third (a third is at least one row), within a limit per series.
 */
import { percentile, round } from '../lib/util.js';

export interface SoakRow {
  /** Minutes since the load started, at the end of this row. */
  minute: number;
  /** Highest VmRSS of the taskq process in the row (sampled every second), MiB. */
  rssMiB: number | null;
  /**
   * Highest RssAnon in the row, MiB: RSS without mapped files. SQLite memory-maps the database
   * (mmap_size 256 MiB), so VmRSS grows with the file as pages are read; RssAnon is the heap and
   * native allocations, where a leak would show.
   */
  anonMiB: number | null;
  /** nodejs_heap_size_used_bytes at the row's /metrics read, MiB: the JavaScript heap alone. */
  heapMiB: number | null;
  /** Entries of /proc/<pid>/fd at the end of the row. */
  fds: number | null;
  /** nodejs_eventloop_lag_p99_seconds of the row's /metrics read, ms (the histogram is reset at each read). */
  loopP99Ms: number | null;
  postP99Ms: number | null;
  getP99Ms: number | null;
  posts: number;
  gets: number;
  /** Tasks that finished in the row: completed + failed (taskq's counters, from /metrics). */
  done: number | null;
  failed: number | null;
  /** Attempts that failed and went back to the queue with backoff. */
  retried: number | null;
  errors: number;
  errorsByKind: Record<string, number>;
  skipped: number;
  /** Tasks queued (due or waiting for a retry) at the end of the row, from /metrics. */
  queued: number | null;
  sseEvents: number;
}

type Numeric =
  | 'rssMiB'
  | 'anonMiB'
  | 'heapMiB'
  | 'fds'
  | 'loopP99Ms'
  | 'postP99Ms'
  | 'getP99Ms'
  | 'done'
  | 'errors'
  | 'queued';

interface SeriesRule {
  key: Numeric;
  label: string;
  /** Flat while the last third's median <= first's * (1 + rel) + abs ... */
  rel: number;
  abs: number;
  /** ... and, for throughput, also >= first's * (1 - rel) - abs. */
  twoSided?: boolean;
}

/** The limits: latencies get a wide margin, as the 2 shared cores are noisy. */
export function seriesRules(rate: number): SeriesRule[] {
  return [
    { key: 'rssMiB', label: 'RSS (MiB)', rel: 0.1, abs: 5 },
    { key: 'anonMiB', label: 'anonymous RSS (MiB)', rel: 0.1, abs: 5 },
    // Sampled at one instant, between collections: a wider margin than RSS.
    { key: 'heapMiB', label: 'JS heap used (MiB)', rel: 0.25, abs: 5 },
    { key: 'fds', label: 'open fds', rel: 0.1, abs: 5 },
    { key: 'loopP99Ms', label: 'event-loop delay p99 (ms)', rel: 0.5, abs: 5 },
    { key: 'postP99Ms', label: 'POST p99 (ms)', rel: 0.5, abs: 5 },
    { key: 'getP99Ms', label: 'GET p99 (ms)', rel: 0.5, abs: 5 },
    { key: 'done', label: 'tasks done', rel: 0.1, abs: 0, twoSided: true },
    { key: 'errors', label: 'errors', rel: 0, abs: 0 },
    // Retries wait 1-2 s in the queue, so some backlog is normal: allow 10 s of input more.
    { key: 'queued', label: 'queued', rel: 0.5, abs: rate * 10 },
  ];
}

const COLUMNS: { title: string; cell: (r: SoakRow) => string }[] = [
  { title: 'min', cell: (r) => String(r.minute) },
  { title: 'RSS MiB', cell: (r) => show(r.rssMiB) },
  { title: 'anon MiB', cell: (r) => show(r.anonMiB) },
  { title: 'heap MiB', cell: (r) => show(r.heapMiB) },
  { title: 'fds', cell: (r) => show(r.fds) },
  { title: 'loop p99 ms', cell: (r) => show(r.loopP99Ms) },
  { title: 'POST p99 ms', cell: (r) => show(r.postP99Ms) },
  { title: 'GET p99 ms', cell: (r) => show(r.getP99Ms) },
  { title: 'POSTs', cell: (r) => show(r.posts) },
  { title: 'GETs', cell: (r) => show(r.gets) },
  { title: 'done', cell: (r) => show(r.done) },
  { title: 'retried', cell: (r) => show(r.retried) },
  { title: 'errors', cell: (r) => show(r.errors) },
  { title: 'queued', cell: (r) => show(r.queued) },
  { title: 'SSE events', cell: (r) => show(r.sseEvents) },
];

const show = (n: number | null): string => (n === null ? '-' : String(n));
// Rows are printed as they come, so widths are fixed up front: room for 8 digits or the title.
const WIDTHS = COLUMNS.map((c) => Math.max(8, c.title.length));
const line = (cells: string[]): string =>
  '| ' + cells.map((c, i) => c.padStart(WIDTHS[i] ?? 0)).join(' | ') + ' |';

export function header(): string {
  return [line(COLUMNS.map((c) => c.title)), line(WIDTHS.map((w) => '-'.repeat(w - 1) + ':'))].join('\n');
}

export function rowLine(row: SoakRow): string {
  return line(COLUMNS.map((c) => c.cell(row)));
}

export const p99 = (xs: number[]): number | null => (xs.length === 0 ? null : round(percentile(xs, 99), 2));

/** Nearest rank, as every percentile of the bench: the lower middle value of an even count. */
const median = (xs: number[]): number => percentile(xs, 50);

export interface Verdict {
  series: string;
  /** Rows (their minute) of the first and last thirds. */
  firstRows: number[];
  lastRows: number[];
  firstMedian: number | null;
  lastMedian: number | null;
  limit: string;
  flat: boolean | null;
}

export function verdicts(rows: SoakRow[], warmup: number, rules: SeriesRule[]): Verdict[] {
  const measured = rows.slice(warmup);
  const third = Math.max(1, Math.floor(measured.length / 3));
  const first = measured.slice(0, third);
  const last = measured.slice(-third);
  return rules.map((rule) => {
    const values = (part: SoakRow[]) => part.map((r) => r[rule.key]).filter((v): v is number => v !== null);
    const [a, b] = [values(first), values(last)];
    const firstMedian = a.length > 0 && measured.length >= 2 ? median(a) : null;
    const lastMedian = b.length > 0 && measured.length >= 2 ? median(b) : null;
    let flat: boolean | null = null;
    let limit = `<= first * ${1 + rule.rel} + ${rule.abs}`;
    if (firstMedian !== null && lastMedian !== null) {
      const high = firstMedian * (1 + rule.rel) + rule.abs;
      const low = firstMedian * (1 - rule.rel) - rule.abs;
      flat = lastMedian <= high && (!rule.twoSided || lastMedian >= low);
      limit = rule.twoSided ? `${round(low, 2)}..${round(high, 2)}` : `<= ${round(high, 2)}`;
    }
    return {
      series: rule.label,
      firstRows: first.map((r) => r.minute),
      lastRows: last.map((r) => r.minute),
      firstMedian,
      lastMedian,
      limit,
      flat,
    };
  });
}

/** At least this many rows after the warm-up before a verdict means much. */
export const ROWS_TO_JUDGE = 3;

function verdictLine(v: Verdict): string {
  const mark = v.flat === null ? 'n/a ' : v.flat ? 'flat' : 'NOT FLAT';
  const span = (rows: number[]) => `min ${rows[0] ?? '-'}${rows.length > 1 ? `-${rows.at(-1)}` : ''}`;
  let change = '';
  if (v.firstMedian !== null && v.lastMedian !== null) {
    const pct = v.firstMedian === 0 ? null : (100 * (v.lastMedian - v.firstMedian)) / v.firstMedian;
    if (pct !== null) change = ` (${pct >= 0 ? '+' : ''}${round(pct, 1)} %)`;
    else if (v.lastMedian === 0) change = ' (=)';
  }
  return `  ${mark.padEnd(8)} ${v.series.padEnd(26)} first third (${span(v.firstRows)}) ${show(v.firstMedian)}, last third (${span(v.lastRows)}) ${show(v.lastMedian)}${change}; flat if ${v.limit}`;
}

export function renderVerdicts(list: Verdict[], measuredRows: number): string[] {
  // With one row or none there is nothing to compare.
  const lines = measuredRows < 2 ? [] : list.map(verdictLine);
  const notFlat = list.filter((v) => v.flat === false).map((v) => v.series);
  if (measuredRows < ROWS_TO_JUDGE)
    lines.push(
      `Verdict: TOO SHORT TO JUDGE (${measuredRows} row(s) after the warm-up; ${ROWS_TO_JUDGE} at least)${notFlat.length > 0 ? `; would be NOT FLAT: ${notFlat.join(', ')}` : ''}`,
    );
  else
    lines.push(
      notFlat.length === 0 ? 'Verdict: FLAT (every series)' : `Verdict: NOT FLAT: ${notFlat.join(', ')}`,
    );
  return lines;
}
