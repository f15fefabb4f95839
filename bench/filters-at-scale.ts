/**
 * GET /tasks with every filter of the grammar (core/filter.ts) and POST /tasks/bulk dry runs at a
 * large table size, server time (docs/benchmarks.md, "Filters at scale").
 *
 *   node --import tsx bench/filters-at-scale.ts --db <sqlite path | postgres url> [--rows 1000000]
 *     [--samples 100] [--keep] [--json FILE]
 *
 * Fills the database to --rows tasks with real ids (the encryption of each seq, task-ids.ts), in
 * large batches outside the driver, then rebuilds the stats counters: 10 actions, 1% queued,
 * 2% failed (error `boom: code <n>`), 1% cancelled, the rest completed, created over two hours and
 * finished a second later; data `{"user_id": g % 1000, "tenant": "t<g % 50>"}`. A database already
 * holding that many rows is reused. Then the service's app (API role) answers --samples requests
 * of each case through inject(): routing, validation, the query and serialization, no socket.
 * Prints p50/p99/max in ms, rows per page and whether the page scanned. On PostgreSQL the schema
 * is `?schema=` of the URL (default filters_bench); dropped at the end unless --keep.
 */
import { rmSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { pino } from 'pino';
import { isPostgresUrl, resolveConfig } from '../src/core/config.js';
import { TaskIdCodec } from '../src/drivers/task-ids.js';
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
import type { FilterRow } from './scenarios/filters.js';
import { parseFlags, usageError } from './lib/flags.js';
import { percentile } from './lib/util.js';

const USAGE = `usage: node --import tsx bench/filters-at-scale.ts --db <sqlite path | postgres url>
         [--rows 1000000] [--samples 100] [--keep] [--json FILE]
Server times of GET /tasks with every filter and of bulk dry runs at --rows tasks
(docs/benchmarks.md, "Filters at scale"). --keep keeps the filled database.`;
const flags = parseFlags(
  process.argv.slice(2),
  {
    db: { type: 'string' },
    rows: { type: 'integer', min: 1000, max: 100_000_000 },
    samples: { type: 'integer', min: 1, max: 100_000 },
    keep: { type: 'boolean' },
    json: { type: 'string' },
  },
  USAGE,
);
const db = flags.db ?? usageError('--db is required', USAGE);
const rows = flags.rows ?? 1_000_000;
const samples = flags.samples ?? 100;
const keep = flags.keep ?? false;
const jsonOut = flags.json;
const postgres = isPostgresUrl(db);

const CHUNK = 50_000;
/** Requests of each case not timed (caches warm, statements planned). */
const WARMUP = 10;
const now = Date.now();
const SPREAD_MS = 2 * 60 * 60 * 1000;
const t0 = now - SPREAD_MS - 60_000;

/** Task number g (1-based) of the fill. */
function taskOf(g: number) {
  const r = g % 100;
  const status = r === 0 ? 'queued' : r === 2 || r === 3 ? 'failed' : r === 4 ? 'cancelled' : 'completed';
  const createdAt = t0 + Math.floor((g * SPREAD_MS) / rows);
  return {
    action: `action${g % 10}`,
    data: JSON.stringify({ user_id: g % 1000, tenant: `t${g % 50}` }),
    status,
    createdAt,
    processedAt: status === 'queued' ? null : createdAt + 1000,
    error:
      status === 'failed' ? `boom: code ${g % 7}` : status === 'cancelled' ? 'cancelled by request' : null,
    result: status === 'completed' ? '{"ok":true}' : null,
  };
}

const SCHEMA_DEFAULT = 'filters_bench';

const fillPostgresRows = (url: string) =>
  fillPostgres({
    url,
    schema: schemaOf(url, SCHEMA_DEFAULT),
    rows,
    chunk: CHUNK,
    prepare: async (client) => {
      const key = (
        await client.query<{ value: Buffer }>(`SELECT value FROM taskq_meta WHERE name = 'task_id_key'`)
      ).rows[0]!.value;
      const ids = new TaskIdCodec(key);
      return (from, to) => {
        const cols: unknown[][] = Array.from({ length: 9 }, () => []);
        for (let g = from; g <= to; g++) {
          const t = taskOf(g);
          [
            g,
            ids.encode(g),
            t.action,
            t.data,
            t.status,
            t.createdAt,
            t.processedAt,
            t.error,
            t.result,
          ].forEach((v, i) => cols[i]!.push(v));
        }
        return client.query(
          `INSERT INTO tasks (seq, id, action, data, status, priority, run_at, attempts, max_attempts,
                            created_at, started_at, processed_at, error, result)
         OVERRIDING SYSTEM VALUE
         SELECT seq, id, action, data::json, status, 0, created_at, 1, 3, created_at, created_at, processed_at,
                error, result::json
           FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                       $8::text[], $9::text[])
                AS t(seq, id, action, data, status, created_at, processed_at, error, result)`,
          cols,
        );
      };
    },
    finish: async (client) => {
      await client.query(`SELECT setval(pg_get_serial_sequence('tasks', 'seq'), ${rows})`);
      await rebuildPostgresStats(client);
    },
  });

const fillSqliteRows = (path: string) =>
  fillSqlite({
    path,
    rows,
    chunk: CHUNK,
    prepare: (conn) => {
      const key = (
        conn.prepare(`SELECT value FROM taskq_meta WHERE name = 'task_id_key'`).get() as { value: Buffer }
      ).value;
      const ids = new TaskIdCodec(key);
      // The stats triggers run, as in production.
      const insert = conn.prepare(`
      INSERT INTO tasks (seq, id, action, data, status, priority, run_at, attempts, max_attempts,
                         created_at, started_at, processed_at, error, result)
      VALUES (?, ?, ?, ?, ?, 0, ?, 1, 3, ?, ?, ?, ?, ?)`);
      return (from, to) => {
        for (let g = from; g <= to; g++) {
          const t = taskOf(g);
          insert.run(
            g,
            ids.encode(g),
            t.action,
            t.data,
            t.status,
            t.createdAt,
            t.createdAt,
            t.createdAt,
            t.processedAt,
            t.error,
            t.result,
          );
        }
      };
    },
  });

const dbSetting = withDefaultSchema(db, 'filters_bench');
const config = resolveConfig(
  { db: dbSetting, role: 'api', port: 0, host: '127.0.0.1', logLevel: 'silent' },
  {},
);
const service = await TaskqNode.create({ config, logger: pino({ level: 'silent' }) }); // migrates
if (postgres) await fillPostgresRows(dbSetting);
else fillSqliteRows(db);

const iso = (ms: number) => encodeURIComponent(new Date(ms).toISOString());
const mid = t0 + SPREAD_MS / 2;
const some = (await service.queue.list({ limit: 1, filter: { status: 'queued' } })).tasks[0]!;
const cases: { name: string; url: string; method?: 'POST'; body?: object }[] = [
  { name: 'first page (no filter)', url: '/tasks' },
  { name: 'status=failed', url: '/tasks?status=failed' },
  { name: 'status=queued', url: '/tasks?status=queued' },
  { name: 'action=action3', url: '/tasks?action=action3' },
  { name: 'status=failed&action=action3', url: '/tasks?status=failed&action=action3' },
  { name: 'status=completed&action=action3 (scan)', url: '/tasks?status=completed&action=action3' },
  { name: 'id=<whole id>', url: `/tasks?id=${some.id}` },
  { name: 'id=<4-digit prefix> (scan)', url: `/tasks?id=${some.id.slice(0, 4)}` },
  { name: 'data.user_id=42 (scan)', url: '/tasks?data.user_id=42' },
  { name: 'status=failed&data.tenant=t7 (scan)', url: '/tasks?status=failed&data.tenant=t7' },
  { name: 'error=code 3 (scan)', url: '/tasks?error=code%203' },
  {
    name: 'created in one hour (scan)',
    url: `/tasks?created_after=${iso(mid)}&created_before=${iso(mid + 3_600_000)}`,
  },
  { name: 'finished before the middle (scan)', url: `/tasks?finished_before=${iso(mid)}` },
  {
    name: 'bulk dry run status=failed&action=action3',
    url: '/tasks/bulk',
    method: 'POST',
    body: { op: 'retry', filter: { status: 'failed', action: 'action3' }, dry_run: true },
  },
  {
    name: 'bulk dry run data.tenant=t7 (count window 50,000)',
    url: '/tasks/bulk',
    method: 'POST',
    body: { op: 'retry', filter: { 'data.tenant': 't7' }, dry_run: true },
  },
];
// The page after the first of a scan continues below its window: time one such page too.
const firstScan = await service.app.inject({ url: '/tasks?data.user_id=42' });
const next = (JSON.parse(firstScan.body) as { next_cursor: string | null }).next_cursor;
if (next)
  cases.push({ name: 'data.user_id=42, next page (scan)', url: `/tasks?data.user_id=42&cursor=${next}` });

const results: FilterRow[] = [];
for (const c of cases) {
  const times: number[] = [];
  let last = '';
  for (let i = 0; i < samples + WARMUP; i++) {
    const t = performance.now();
    const res = await service.app.inject({
      method: c.method ?? 'GET',
      url: c.url,
      ...(c.body && { payload: c.body }),
    });
    if (res.statusCode >= 300) throw new Error(`${c.name}: ${res.statusCode} ${res.body}`);
    if (i >= WARMUP) times.push(performance.now() - t);
    last = res.body;
  }
  const body = JSON.parse(last) as { count?: number; matched?: number; scans?: boolean };
  const row = {
    name: c.name,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    max: Math.max(...times),
    rows: body.count ?? body.matched ?? null,
    scans: body.scans ?? false,
  };
  results.push(row);
  log(
    `${row.name}: p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms (${row.rows} rows, scans ${row.scans})`,
  );
}

await service.stop();
const table = [
  `| filter (${rows.toLocaleString()} tasks, ${postgres ? 'PostgreSQL' : 'SQLite'}) | p50 ms | p99 ms | max ms | rows | scans |`,
  '| --- | ---: | ---: | ---: | ---: | --- |',
  ...results.map(
    (r) =>
      `| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.rows ?? ''} | ${r.scans ? 'yes' : 'no'} |`,
  ),
].join('\n');
console.log(table);
if (jsonOut)
  writeFileSync(
    jsonOut,
    JSON.stringify({ rows, samples, db: postgres ? 'postgresql' : 'sqlite', results }, null, 2),
  );
if (!keep) {
  if (postgres) {
    const client = new pg.Client({ connectionString: withoutSchema(dbSetting) });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schemaOf(dbSetting, SCHEMA_DEFAULT)} CASCADE`);
    await client.end();
  } else for (const suffix of ['', '-wal', '-shm']) rmSync(`${db}${suffix}`, { force: true });
}
const slow = results.filter((r) => r.p50 >= 50);
process.exit(slow.length > 0 ? 1 : 0);
