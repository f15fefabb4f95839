/**
 * GET /stats, GET /metrics and the stats stream's read at a large table size (docs/stats.md).
 *
 *   node --import tsx bench/stats-at-scale.ts --db <sqlite path | postgres url> --rows 10000000
 *     [--samples 300] [--posters 4] [--keep] [--old]
 *
 * Fills the database to --rows tasks fast (PostgreSQL: INSERT ... SELECT generate_series in
 * chunks; SQLite: a recursive CTE per chunk). SQLite's triggers count the rows as in production;
 * on PostgreSQL, where the driver's statements keep the counters, the fill rebuilds them and the
 * rings at the end, spread over the shards (lib/fill.ts). 10 actions, about 1% queued, 0.01%
 * running, 2% failed, 1% cancelled, the rest completed, finished over the last two hours. A
 * database already holding that many rows is reused. Then it starts the real service (API role,
 * real HTTP server on an ephemeral port) and, while --posters clients (in a worker thread)
 * POST tasks without pause, times --samples sequential requests of each endpoint and as many
 * direct calls of readStats (what the /events/stats ticker runs once per tick for every
 * subscriber), plus the POST latencies and the longest event-loop stall (monitorEventLoopDelay),
 * and the same POSTs and event-loop figures over a few seconds with no reads (the baseline).
 * --old also times the full-table GROUP BY counts these replaced, once. On PostgreSQL the schema
 * is `?schema=` of the URL (default stats_bench); it is dropped at the end unless --keep.
 */
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { pino } from 'pino';
import { readStats } from '../src/queue/stats.js';
import { isPostgresUrl, resolveConfig } from '../src/core/config.js';
import { openDriver } from '../src/drivers/open-driver.js';
import { TaskqNode } from '../src/service.js';
import {
  fillPostgres,
  fillSqlite,
  log,
  rebuildPostgresStats,
  schemaOf,
  withDefaultSchema,
  withoutSchema,
} from './lib/fill.js';
import { parseFlags, usageError } from './lib/flags.js';
import { percentile } from './lib/util.js';

const USAGE = `usage: node --import tsx bench/stats-at-scale.ts --db <sqlite path | postgres url>
         [--rows 1000000] [--samples 300] [--posters 4] [--baseline-ms 5000] [--keep] [--old]
Times GET /stats, GET /metrics and the stats stream's read at --rows tasks while --posters
clients POST tasks (docs/stats.md). --keep keeps the filled database, --old also times the
full-table counts these replaced.`;
const flags = parseFlags(
  process.argv.slice(2),
  {
    db: { type: 'string' },
    rows: { type: 'integer', min: 1000, max: 100_000_000 },
    samples: { type: 'integer', min: 1, max: 100_000 },
    posters: { type: 'integer', min: 0, max: 64 },
    'baseline-ms': { type: 'integer', min: 0, max: 600_000 },
    keep: { type: 'boolean' },
    old: { type: 'boolean' },
  },
  USAGE,
);
const db = flags.db ?? usageError('--db is required', USAGE);
const rows = flags.rows ?? 1_000_000;
const samples = flags.samples ?? 300;
const posters = flags.posters ?? 4;
const keep = flags.keep ?? false;
const old = flags.old ?? false;
const postgres = isPostgresUrl(db);

const CHUNK = postgres ? 1_000_000 : 250_000;
const now = Date.now();
const SPREAD_MS = 2 * 60 * 60 * 1000; // finishes over the last two hours

/** The row of task number g (1-based): status by residue, times growing with g. */
const STATUS_CASE = (g: string) => `CASE WHEN ${g} % 100 = 0 THEN 'queued'
     WHEN ${g} % 10000 = 1 THEN 'running'
     WHEN ${g} % 100 IN (2, 3) THEN 'failed'
     WHEN ${g} % 100 = 4 THEN 'cancelled'
     ELSE 'completed' END`;
const createdAt = (g: string) => `${now - SPREAD_MS - 60_000} + ${g} * ${SPREAD_MS} / ${rows}`;
const processedAt = (g: string) =>
  `CASE WHEN ${g} % 100 = 0 OR ${g} % 10000 = 1 THEN NULL ELSE ${createdAt(g)} + 1000 END`;

const SCHEMA_DEFAULT = 'stats_bench';

const fillPostgresRows = (url: string) =>
  fillPostgres({
    url,
    schema: schemaOf(url, SCHEMA_DEFAULT),
    rows,
    chunk: CHUNK,
    prepare: async (client) => (from, to) =>
      client.query(`
        INSERT INTO tasks (id, action, data, status, priority, run_at, attempts, max_attempts,
                           created_at, started_at, processed_at, lease_owner, lease_expires_at)
        SELECT 'bench-' || g, 'action' || (g % 10), '{"n":1}', ${STATUS_CASE('g')}, 0,
               ${createdAt('g')}, 1, 3, ${createdAt('g')}, ${createdAt('g')}, ${processedAt('g')},
               CASE WHEN g % 10000 = 1 THEN 'bench' END,
               CASE WHEN g % 10000 = 1 THEN ${now + 3_600_000}::int8 END
          FROM generate_series(${from}::int8, ${to}::int8) g`),
    finish: rebuildPostgresStats,
  });

const fillSqliteRows = (path: string) =>
  fillSqlite({
    path,
    rows,
    chunk: CHUNK,
    prepare: (conn) => {
      const fill = conn.prepare(`
      INSERT INTO tasks (seq, id, action, data, status, priority, run_at, attempts, max_attempts,
                         created_at, started_at, processed_at, lease_owner, lease_expires_at)
      WITH RECURSIVE s(g) AS (SELECT @from UNION ALL SELECT g + 1 FROM s WHERE g < @to)
      SELECT g, 'bench-' || g, 'action' || (g % 10), '{"n":1}', ${STATUS_CASE('g')}, 0,
             ${createdAt('g')}, 1, 3, ${createdAt('g')}, ${createdAt('g')}, ${processedAt('g')},
             CASE WHEN g % 10000 = 1 THEN 'bench' END,
             CASE WHEN g % 10000 = 1 THEN ${now + 3_600_000} END
        FROM s`);
      return (from, to) => fill.run({ from, to });
    },
  });

/** The full-table queries the counters replaced (both dialects but throughput), kept here to compare. */
const OLD_COUNTS = {
  countByStatus: `SELECT status, count(*) AS n FROM tasks GROUP BY status`,
  countByAction: `SELECT action, status, count(*) AS n FROM tasks GROUP BY action, status ORDER BY action, status`,
  oldestQueued: `SELECT min(created_at) AS t FROM tasks WHERE status = 'queued'`,
} as const;
const OLD_THROUGHPUT_PG = `
  SELECT (processed_at / 60000) * 60000 AS minute,
         count(*) FILTER (WHERE status = 'completed') AS completed,
         count(*) FILTER (WHERE status = 'failed') AS failed
    FROM tasks WHERE status IN ('completed', 'failed') AND processed_at >= $1
   GROUP BY minute ORDER BY minute`;
const OLD_THROUGHPUT_SQLITE = `
  SELECT (processed_at / 60000) * 60000 AS minute,
         sum(status = 'completed') AS completed, sum(status = 'failed') AS failed
    FROM tasks WHERE status IN ('completed', 'failed') AND processed_at >= @since
   GROUP BY minute ORDER BY minute`;

/** Times the old full-table counts once each, for comparison. */
async function timeOldCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const names = ['countByStatus', 'countByAction', 'oldestQueued'] as const;
  if (postgres) {
    const client = new pg.Client({
      connectionString: withoutSchema(db!),
      options: `-c search_path=${schemaOf(db!, SCHEMA_DEFAULT)}`,
    });
    await client.connect();
    for (const name of names) {
      const t = performance.now();
      await client.query(OLD_COUNTS[name]);
      out[name] = performance.now() - t;
    }
    const t = performance.now();
    await client.query(OLD_THROUGHPUT_PG, [now - 3_600_000]);
    out.throughput = performance.now() - t;
    await client.end();
  } else {
    const conn = new Database(db!, { readonly: true });
    for (const name of names) {
      const t = performance.now();
      conn.prepare(OLD_COUNTS[name]).all();
      out[name] = performance.now() - t;
    }
    const t = performance.now();
    conn.prepare(OLD_THROUGHPUT_SQLITE).all({ since: now - 3_600_000 });
    out.throughput = performance.now() - t;
    conn.close();
  }
  return out;
}

// 1. schema (through the service's own migrate), then the fill
const dbSetting = withDefaultSchema(db, 'stats_bench');
const config = resolveConfig(
  { db: dbSetting, role: 'api', port: 0, host: '127.0.0.1', logLevel: 'silent' },
  {},
);
{
  const driver = await openDriver(config);
  await driver.migrate();
  await driver.close();
}
log(`filling ${db} to ${rows.toLocaleString()} rows`);
const fillStarted = performance.now();
if (postgres) await fillPostgresRows(dbSetting);
else fillSqliteRows(db);
log(`fill took ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`);

// 2. the real service; posters write without pause while the reads are timed
const service = await TaskqNode.create({ config, logger: pino({ level: 'silent' }) });
const url = await service.start();
const oldCounts = old ? await timeOldCounts() : undefined;
const counts = await service.queue.counts();
log(`counts: ${JSON.stringify(counts.byStatus)}`);

// The posters run in a worker thread, so their client-side work does not share the service's
// event loop: what the figures below show is the service's own.
const POSTER_CODE = `
  const { parentPort, workerData } = require('node:worker_threads');
  let latencies = [];
  let running = true;
  parentPort.on('message', (m) => {
    parentPort.postMessage(latencies);
    latencies = [];
    if (m === 'stop') running = false;
  });
  const post = async () => {
    while (running) {
      const t = performance.now();
      const res = await fetch(workerData.url + '/tasks', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'action1', data: { n: 1 } }),
      });
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error('POST /tasks answered ' + res.status);
      latencies.push(performance.now() - t);
    }
  };
  Promise.all(Array.from({ length: workerData.posters }, post)).then(() => process.exit(0));
`;
const posterThread = new Worker(POSTER_CODE, { eval: true, workerData: { url, posters } });
posterThread.on('error', (err) => {
  throw err;
});
/** The POST latencies since the last call; 'stop' also ends the posters. */
const takeLatencies = (message: 'mark' | 'stop') =>
  new Promise<number[]>((resolve) => {
    posterThread.once('message', resolve);
    posterThread.postMessage(message);
  });
await takeLatencies('mark');
// Baseline: the same POSTs with no stats read, as long as the timed phase below will roughly take,
// so the event-loop figure of that phase can be told apart from what writes alone (and the
// machine) cause.
const baseline = monitorEventLoopDelay({ resolution: 1 });
baseline.enable();
await new Promise((resolve) => setTimeout(resolve, flags['baseline-ms'] ?? 5000));
baseline.disable();
const baselinePostLatencies = await takeLatencies('mark');

// one open stats stream, as a dashboard would keep
const stream = await fetch(`${url}/events/stats`);
const streamReader = stream.body!.getReader();
let streamEvents = 0;
const streaming$ = (async () => {
  for (;;) {
    const { done, value } = await streamReader.read();
    if (done) return;
    if (new TextDecoder().decode(value).includes('event: stats')) streamEvents++;
  }
})().catch(() => {});

const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const timings: Record<string, number[]> = {
  'GET /stats': [],
  'GET /metrics': [],
  'stream read (readStats)': [],
};
for (let i = 0; i < samples; i++) {
  let t = performance.now();
  let res = await fetch(`${url}/stats`);
  await res.arrayBuffer();
  timings['GET /stats']!.push(performance.now() - t);
  t = performance.now();
  res = await fetch(`${url}/metrics`);
  await res.arrayBuffer();
  timings['GET /metrics']!.push(performance.now() - t);
  t = performance.now();
  await readStats(service.queue);
  timings['stream read (readStats)']!.push(performance.now() - t);
}
loop.disable();
const postLatencies = await takeLatencies('stop');
await streamReader.cancel();
await streaming$;
await service.stop();

// 3. the table
const driverName = postgres ? 'postgresql' : 'sqlite';
console.log(
  `\n${driverName}, ${rows.toLocaleString()} tasks, ${samples} samples each, ${posters} posters running`,
);
console.log('| measurement                     |     p50 ms |     p99 ms |     max ms |');
console.log('|---------------------------------|-----------:|-----------:|-----------:|');
const row = (label: string, xs: number[]) =>
  console.log(
    `| ${label.padEnd(31)} | ${percentile(xs, 50).toFixed(2).padStart(10)} | ${percentile(xs, 99).toFixed(2).padStart(10)} | ${Math.max(
      ...xs,
    )
      .toFixed(2)
      .padStart(10)} |`,
  );
for (const [label, xs] of Object.entries(timings)) row(label, xs);
row(`POST /tasks (${postLatencies.length} meanwhile)`, postLatencies);
console.log(
  `| event-loop delay (monitor)      | ${(loop.percentile(50) / 1e6).toFixed(2).padStart(10)} | ${(loop.percentile(99) / 1e6).toFixed(2).padStart(10)} | ${(loop.max / 1e6).toFixed(2).padStart(10)} |`,
);
row(`POST /tasks, no reads (${baselinePostLatencies.length})`, baselinePostLatencies);
console.log(
  `| event-loop delay, no reads      | ${(baseline.percentile(50) / 1e6).toFixed(2).padStart(10)} | ${(baseline.percentile(99) / 1e6).toFixed(2).padStart(10)} | ${(baseline.max / 1e6).toFixed(2).padStart(10)} |`,
);
console.log(`stats events received on one open /events/stats stream: ${streamEvents}`);
if (oldCounts) {
  console.log('\nthe full-table queries these replaced, once each (ms):');
  for (const [name, ms] of Object.entries(oldCounts)) console.log(`  ${name.padEnd(14)} ${ms.toFixed(0)}`);
}

if (!keep) {
  if (postgres) {
    const client = new pg.Client({ connectionString: withoutSchema(dbSetting) });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schemaOf(dbSetting, SCHEMA_DEFAULT)}" CASCADE`);
    await client.end();
    log(`dropped schema ${schemaOf(dbSetting, SCHEMA_DEFAULT)}`);
  } else {
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${db}${suffix}`, { force: true });
    log(`deleted ${db}`);
  }
}
