/**
 * `npm run soak -- --minutes 30`: does a long-running taskq stay steady? One real `taskq run`
 * process (role all, built-in handlers plus bench/soak/handlers) gets steady mixed load from this
 * process (bench/soak/client.ts) for `--minutes`; every minute one row shows the process's RSS,
 * open fds and event-loop delay, the client's p99 latencies, tasks done and errors. The end
 * prints whether each series stayed flat (bench/soak/summary.ts), checks that every accepted task
 * finished, and writes bench/results/soak-latest.json. Not part of npm test or CI.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isPostgresUrl } from '../src/core/config.js';
import type { Stats } from '../src/api/schemas.js';
import { taskqSchema } from './lib/pg-cpu.js';
import { killAll, ROOT, startTaskq } from './lib/proc.js';
import { machineInfo } from './lib/report.js';
import { freshDb } from './lib/store.js';
import { now, openFds, round, sampleRss, sleep, watchdog } from './lib/util.js';
import { SoakClient } from './soak/client.js';
import { parseSoakOptions } from './soak/options.js';
import {
  header,
  p99,
  renderVerdicts,
  rowLine,
  ROWS_TO_JUDGE,
  seriesRules,
  verdicts,
  type SoakRow,
} from './soak/summary.js';

const opts = parseSoakOptions(process.argv.slice(2));
const rowMs = opts.rowSeconds * 1000;
const rowCount = Math.ceil((opts.minutes * 60) / opts.rowSeconds);
// Whole-run bound: the load, then up to a few minutes to start, drain and stop; children die with it.
watchdog(opts.minutes * 60_000 + 5 * 60_000, 'soak', killAll);

const startedAt = new Date().toISOString();
const machine = await machineInfo();
const db = await freshDb(opts.db, 'taskq_soak');
const storage = isPostgresUrl(db) ? `postgresql, schema ${taskqSchema(db)}` : `sqlite, ${db}`;
const taskqArgs = ['--handlers', join(ROOT, 'bench', 'soak', 'handlers')];
const log = (text: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);
};
log(`soak: ${opts.minutes} min at ${opts.rate} POST/s + ${opts.readRate} GET/s on ${storage}`);
const { child, url } = await startTaskq({ db, role: 'all', extra: taskqArgs });

// Why the run stopped early, if it did (an object: set from callbacks).
const halt: { reason: string | null } = { reason: null };
void child.exited.then((code) => (halt.reason ??= `taskq exited during the soak (code ${code})`));
// Ctrl-C ends the load early; the rows so far are still summarised.
process.once('SIGINT', () => (halt.reason ??= 'interrupted (SIGINT)'));

interface Scrape {
  finished: number | null;
  retried: number | null;
  failed: number | null;
  queued: number | null;
  loopP99Ms: number | null;
  heapMiB: number | null;
}

/**
 * Sum of the series of metric `name` in a Prometheus text whose labels contain `labels`; null if
 * the metric is not there at all (a labelled counter with no series yet is there, and sums to 0).
 */
function metricSum(text: string, name: string, labels = ''): number | null {
  if (!text.includes(`# TYPE ${name} `)) return null;
  let sum = 0;
  for (const line of text.split('\n')) {
    const rest = line.slice(name.length);
    if (!line.startsWith(name) || !(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    if (!rest.includes(labels)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/** One /metrics read: taskq's own counters, and the event-loop delay since the previous read. */
async function scrape(client: SoakClient): Promise<Scrape | null> {
  const text = await client.get('/metrics');
  if (text === undefined) return null;
  const completed = metricSum(text, 'taskq_tasks_completed_total');
  const failed = metricSum(text, 'taskq_tasks_failed_total');
  // prom-client resets its event-loop histogram at each read, so this p99 covers one row.
  const loop = metricSum(text, 'nodejs_eventloop_lag_p99_seconds');
  const heap = metricSum(text, 'nodejs_heap_size_used_bytes');
  return {
    finished: completed === null || failed === null ? null : completed + failed,
    failed,
    retried: metricSum(text, 'taskq_tasks_retried_total', 'trigger="backoff"'),
    queued: metricSum(text, 'taskq_tasks', 'status="queued"'),
    loopP99Ms: loop === null ? null : round(loop * 1000, 2),
    heapMiB: heap === null ? null : round(heap / 1024 / 1024),
  };
}

const delta = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined ? null : a - b;

/** Sleeps until `until` (performance.now()), with a progress line every 15 s; false if the run must stop. */
async function waitRowEnd(client: SoakClient, until: number, t0: number): Promise<boolean> {
  let nextProgress = now() + 15_000;
  while (now() < until) {
    if (halt.reason) return false;
    await sleep(Math.min(1000, until - now()));
    if (now() >= nextProgress && now() < until - 1000) {
      nextProgress += 15_000;
      const { posts, gets, errors } = client.totals;
      const at = (now() - t0) / 60_000;
      log(`  ${at.toFixed(1)} of ${opts.minutes} min: ${posts} POSTs, ${gets} GETs, ${errors} errors so far`);
    }
  }
  return !halt.reason;
}

async function readStats(): Promise<Stats | null> {
  try {
    const res = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(10_000) });
    return res.ok ? ((await res.json()) as Stats) : null;
  } catch {
    return null;
  }
}

/** Queues `count` tasks in batches of 500 and waits until taskq has worked them all off. */
async function prefill(count: number): Promise<void> {
  const batch = {
    tasks: Array.from({ length: 500 }, (_, i) => ({ action: 'sum', data: { numbers: [i, 1] } })),
  };
  for (let sent = 0; sent < count; sent += 500) {
    const res = await fetch(`${url}/tasks/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(sent + 500 <= count ? batch : { tasks: batch.tasks.slice(0, count - sent) }),
    });
    if (res.status !== 202) throw new Error(`prefill: POST /tasks/batch answered ${res.status}`);
    if (sent % 50_000 === 0) log(`  prefill: ${sent} of ${count} queued`);
  }
  for (;;) {
    const stats = await readStats();
    const left = stats ? stats.counts.queued + stats.counts.running : Infinity;
    if (left === 0) break;
    log(`  prefill: ${left} left to work off`);
    await sleep(5000);
  }
}

/** Every 202 must end as a finished task: waits (bounded) for the queue to empty, then counts. */
async function finalCheck(accepted: number) {
  const end = now() + 60_000;
  let stats = await readStats();
  while (stats && stats.counts.queued + stats.counts.running > 0 && now() < end) {
    await sleep(500);
    stats = await readStats();
  }
  if (!stats) return { accepted, ok: false };
  const { counts } = stats;
  const unfinished = counts.queued + counts.running;
  return {
    accepted,
    stored: stats.total,
    ...counts,
    ok: unfinished === 0 && counts.completed + counts.failed === accepted,
  };
}

if (opts.prefill > 0) await prefill(opts.prefill);
const client = new SoakClient(url, opts.rate, opts.readRate);
// The first read sets the counters' baseline and resets the event-loop histogram.
let previous = await scrape(client);
client.takeRow();
client.start();
const t0 = now();
console.log(header());
const rows: SoakRow[] = [];
for (let k = 1; k <= rowCount; k++) {
  const rss = sampleRss(child.pid);
  const anon = sampleRss(child.pid, undefined, undefined, 'RssAnon');
  const complete = await waitRowEnd(client, t0 + k * rowMs, t0);
  const samples = rss.stop();
  const anonSamples = anon.stop();
  if (!complete) break;
  const current = await scrape(client);
  const counts = client.takeRow();
  const errors = Object.values(counts.errors).reduce((a, b) => a + b, 0);
  const row: SoakRow = {
    minute: round((k * opts.rowSeconds) / 60, 2),
    rssMiB: samples.length > 0 ? Math.max(...samples) : null,
    anonMiB: anonSamples.length > 0 ? Math.max(...anonSamples) : null,
    fds: openFds(child.pid),
    loopP99Ms: current?.loopP99Ms ?? null,
    heapMiB: current?.heapMiB ?? null,
    postP99Ms: p99(counts.postMs),
    getP99Ms: p99(counts.getMs),
    posts: counts.posts,
    gets: counts.gets,
    done: delta(current?.finished, previous?.finished),
    failed: delta(current?.failed, previous?.failed),
    retried: delta(current?.retried, previous?.retried),
    errors,
    errorsByKind: counts.errors,
    skipped: counts.skipped,
    queued: current?.queued ?? null,
    sseEvents: counts.sseEvents,
  };
  // A failed read leaves no baseline: the next row's counts are unknown rather than doubled.
  previous = current;
  rows.push(row);
  console.log(rowLine(row));
}
await client.stop();
// Read before stopping taskq, whose exit would otherwise count as a stop.
const stoppedEarly = halt.reason;
log('load stopped; waiting for the queue to empty');
// The prefill tasks are in the counts too (all of them complete).
const finish = stoppedEarly ? null : await finalCheck(client.accepted + opts.prefill);
await child.stop();

const measured = rows.slice(opts.warmup);
const list = verdicts(rows, opts.warmup, seriesRules(opts.rate));
const sum = (pick: (r: SoakRow) => number) => measured.reduce((n, r) => n + pick(r), 0);
const errorsAfterWarmup = sum((r) => r.errors);
const skippedAfterWarmup = sum((r) => r.skipped);
const lines = [
  '',
  `Flat? Rows after the first ${opts.warmup} (warm-up): median of the last third against the first third's:`,
  ...renderVerdicts(list, measured.length),
  `Errors after the warm-up: ${errorsAfterWarmup}; requests not sent (too many in flight): ${skippedAfterWarmup}; event-stream reconnects: ${client.sseReconnects}`,
];
if (finish)
  lines.push(
    finish.ok
      ? `Every accepted task finished: ${JSON.stringify(finish)}`
      : `NOT every accepted task finished: ${JSON.stringify(finish)}`,
  );
if (stoppedEarly) lines.push(`STOPPED EARLY: ${stoppedEarly}`);
console.log(lines.join('\n'));

// Too few rows is no verdict either way: `judged` says so, and `flat` stays false.
const judged = measured.length >= ROWS_TO_JUDGE;
const flat = judged && list.every((v) => v.flat !== false);
const result = {
  startedAt,
  finishedAt: new Date().toISOString(),
  options: opts,
  machine,
  storage,
  taskq: { role: 'all', args: taskqArgs },
  rows,
  verdicts: list,
  judged,
  flat,
  errorsAfterWarmup,
  skippedAfterWarmup,
  sseReconnects: client.sseReconnects,
  finish,
  stoppedEarly,
};
mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n');
console.log(`\nJSON: ${opts.out}`);
const failed = stoppedEarly !== null || finish?.ok === false || list.some((v) => v.flat === false);
process.exit(failed ? 1 : 0);
