/**
 * What the hot PostgreSQL statements cost the server, one statement at a time: the CPU time of
 * the backend that ran them (its /proc/<pid>/schedstat, so a local server only), per statement
 * and per row, for a claim of 1, 7 (c2 / p5 holds at most 7) and 16 tasks and an ack of 7 and 100.
 * The statements are the driver's own (drivers/postgres/queries.ts), on connections with the
 * driver's session settings (claims on a relaxed one). A `SELECT 1` gives the floor any round
 * trip pays. Fixed cost = the claim of 1 less a row; per row = the slope between sizes.
 *
 *   node --import tsx bench/statement-costs.ts --db postgres://... [--rows 20000] [--rounds 3]
 *
 * Each round fills a fresh schema (`?schema=` of the URL, default statement_costs) with --rows
 * no-op tasks through the driver, runs each claim size over a third of them, then acks what the
 * ack sizes claimed. Rounds alternate, and every figure is the median over rounds. The schema is
 * dropped at the end. docs/benchmarks.md ("Where the time goes (PostgreSQL)") has a run.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { parseFlags, usageError } from './lib/flags.js';
import { isPostgresUrl } from '../src/core/config.js';
import {
  claimStatement,
  RELAXED_SESSION_OPTIONS,
  sessionOptions,
  SQL,
} from '../src/drivers/postgres/queries.js';
import { withSchema } from '../test/support/postgres.js';
import { schemaOf, withoutSchema } from './lib/fill.js';
import { analyzeSchema, fill, open } from './lib/store.js';
import { percentile } from './lib/util.js';

const HELP = `usage: node --import tsx bench/statement-costs.ts --db postgres://... [--rows N] [--rounds N]

Server CPU per statement and per row of the driver's claim and ack statements, measured on the
backend that runs them (/proc/<pid>/schedstat: the server must run on this machine).
  --db URL      PostgreSQL URL; ?schema= names the scratch schema (default statement_costs)
  --rows N      tasks filled per round (default 20000)
  --rounds N    rounds; figures are medians (default 3)`;

const flags = parseFlags(
  process.argv.slice(2),
  {
    db: { type: 'string' },
    rows: { type: 'integer', min: 100, max: 10_000_000 },
    rounds: { type: 'integer', min: 1, max: 99 },
  },
  HELP,
);
if (flags.db === undefined || !isPostgresUrl(flags.db)) usageError('--db must be a postgres:// URL', HELP);
const schema = schemaOf(flags.db, 'statement_costs');
const serverUrl = withoutSchema(flags.db);
const db = withSchema(serverUrl, schema);
const rows = flags.rows ?? 20_000;
const rounds = flags.rounds ?? 3;
const CLAIM_SIZES = [1, 7, 16];
const ACK_SIZES = [7, 100];
const HISTORY_MAX = 10;

interface Backend {
  client: pg.Client;
  /** CPU time of this connection's backend so far, in µs. */
  cpuUs(): number;
}

async function connect(options: string): Promise<Backend> {
  const client = new pg.Client({ connectionString: serverUrl, options });
  await client.connect();
  const { rows: found } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = found[0]?.pid;
  const cpuUs = () => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
  return { client, cpuUs };
}

interface Claimed {
  seq: string;
  attempts: number;
  priority: number;
  run_at: string;
}

/**
 * Claims `size` tasks at a time `times` times, from the claim floor as the driver's plain claims
 * do (claim-floor.ts: the first claim from the front); returns the server µs per claim and the rows.
 */
async function claims(
  backend: Backend,
  size: number,
  times: number,
): Promise<{ us: number; got: Claimed[] }> {
  const statement = claimStatement('claimFromFloor', size);
  const got: Claimed[] = [];
  const { rows: front } = await backend.client.query<Claimed>(
    "SELECT priority, run_at FROM tasks WHERE status = 'queued' ORDER BY priority DESC, run_at, seq LIMIT 1",
  );
  let floor = [front[0]?.priority ?? 0, front[0]?.run_at ?? 0];
  const cpu0 = backend.cpuUs();
  for (let i = 0; i < times; i++) {
    const now = Date.now();
    const params = ['bench', now + 60_000, now, ...(statement.limitParam ? [size] : []), ...floor];
    const result = await backend.client.query<Claimed>({
      name: statement.name,
      text: statement.text,
      values: params,
    });
    const last = result.rows.at(-1);
    if (last) floor = [last.priority, last.run_at];
    got.push(...result.rows);
  }
  return { us: (backend.cpuUs() - cpu0) / times, got };
}

/** Acks `tasks` `size` at a time; returns the server µs per ack. */
async function acks(backend: Backend, tasks: Claimed[], size: number): Promise<number> {
  let statements = 0;
  const cpu0 = backend.cpuUs();
  for (let i = 0; i + size <= tasks.length; i += size) {
    const batch = tasks.slice(i, i + size);
    const now = Date.now();
    await backend.client.query({
      name: 'completeTasks',
      text: SQL.completeTasks,
      values: [
        now,
        batch.map((t) => t.seq),
        batch.map(() => 'bench'),
        batch.map((t) => t.attempts),
        batch.map(() => 'null'),
        batch.map(() => now),
        HISTORY_MAX,
      ],
    });
    statements++;
  }
  return (backend.cpuUs() - cpu0) / statements;
}

const figures = new Map<string, number[]>();
const note = (name: string, us: number) => figures.set(name, [...(figures.get(name) ?? []), us]);

const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
for (let round = 1; round <= rounds; round++) {
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const driver = await open(db);
  await fill(driver, rows);
  await driver.close();
  await analyzeSchema(db);
  const relaxed = await connect(`${sessionOptions(schema)} ${RELAXED_SESSION_OPTIONS}`);
  const durable = await connect(sessionOptions(schema));
  const floorStart = relaxed.cpuUs();
  for (let i = 0; i < 500; i++) await relaxed.client.query({ name: 'one', text: 'SELECT 1' });
  note('SELECT 1', (relaxed.cpuUs() - floorStart) / 500);
  const share = Math.floor(rows / 3);
  const claimed: Claimed[] = [];
  for (const size of CLAIM_SIZES) {
    // A few claims first: the connection plans the statement once.
    await claims(relaxed, size, 3);
    const { us, got } = await claims(relaxed, size, Math.floor(share / size) - 3);
    note(`claim of ${size}`, us);
    claimed.push(...got);
  }
  let from = 0;
  for (const size of ACK_SIZES) {
    const part = claimed.slice(from, from + Math.floor(claimed.length / ACK_SIZES.length));
    from += part.length;
    note(`ack of ${size}`, await acks(durable, part, size));
  }
  await relaxed.client.end();
  await durable.client.end();
  process.stderr.write(`round ${round} of ${rounds} done\n`);
}
await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
await admin.end();

const at = (name: string) => percentile(figures.get(name) ?? [], 50);
const slope = (a: number, b: number, kind: 'claim' | 'ack') =>
  (at(`${kind} of ${b}`) - at(`${kind} of ${a}`)) / (b - a);
console.log(`server CPU per statement (µs, median of ${rounds} rounds, ${rows} tasks each)`);
for (const name of figures.keys()) console.log(`  ${name.padEnd(12)} ${at(name).toFixed(1)}`);
const claimPerRow = slope(1, 16, 'claim');
const ackPerRow = slope(7, 100, 'ack');
console.log(
  `claim: ${(at('claim of 1') - claimPerRow).toFixed(1)} fixed + ${claimPerRow.toFixed(1)} per row`,
);
console.log(`ack:   ${(at('ack of 7') - 7 * ackPerRow).toFixed(1)} fixed + ${ackPerRow.toFixed(1)} per row`);
