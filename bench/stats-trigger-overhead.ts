/**
 * What the stats triggers (PostgreSQL migration 0003, docs/stats.md) add to each write statement.
 *
 *   node --import tsx bench/stats-trigger-overhead.ts [--db postgres://...] [--statements 5000]
 *     [--clients 8] [--async-commit]
 *
 * Two fresh schemas, identical but for the triggers (disabled in one): stats_overhead_off and
 * stats_overhead_on, dropped afterwards. One client per schema runs the same loop, the two
 * interleaved statement by statement so that the machine's noise falls on both alike: a claim of
 * 7 rows (the driver's claim statement, autocommit), a heartbeat (an UPDATE that changes no
 * status) and the completion of those 7 rows. Medians and p10 per statement. Then --clients
 * clients at once on each schema in turn (alternating rounds), where one counter row per action
 * would serialise their commits: statements per second.
 * With --async-commit (synchronous_commit = off) no statement waits for its WAL flush, so what
 * remains is the CPU each statement costs, and the triggers' share of it shows.
 */
import pg from 'pg';
import { PostgresDriver } from '../src/drivers/postgres/postgres-driver.js';
import { SQL } from '../src/drivers/postgres/queries.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const url = flag('db', 'postgres://postgres@127.0.0.1:5432/test');
const statements = Number(flag('statements', '5000'));
const clients = Number(flag('clients', '8'));
const asyncCommit = args.includes('--async-commit');
const BATCH = 7;
const PARALLEL_ROUNDS = 4; // per setting, alternating
const SETTINGS = ['off', 'on'] as const;
type Setting = (typeof SETTINGS)[number];
const schemaOf = (s: Setting) => `stats_overhead_${s}`;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
const connect = async (setting: Setting): Promise<pg.Client> => {
  const options = `-c search_path=${schemaOf(setting)}${asyncCommit ? ' -c synchronous_commit=off' : ''}`;
  const client = new pg.Client({ connectionString: url, options });
  await client.connect();
  return client;
};

const rows = statements * BATCH + clients * BATCH * 2;
const main: Record<Setting, pg.Client> = {} as Record<Setting, pg.Client>;
for (const setting of SETTINGS) {
  await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schemaOf(setting)} CASCADE`));
  const driver = new PostgresDriver({ connectionString: url, poolSize: 1, schema: schemaOf(setting) });
  await driver.migrate();
  await driver.close();
  const c = await connect(setting);
  if (setting === 'off') await c.query('ALTER TABLE tasks DISABLE TRIGGER USER');
  await c.query(
    `INSERT INTO tasks (id, action, data, status, run_at, max_attempts, created_at)
     SELECT gen_random_uuid()::text, 'a' || (g % 4), '{}', 'queued', 0, 3, g FROM generate_series(1, $1) g`,
    [rows],
  );
  await c.query('VACUUM ANALYZE tasks');
  main[setting] = c;
}

/** Claim 7, heartbeat, complete the 7: ms of each. */
async function iteration(client: pg.Client, owner: string): Promise<[number, number, number]> {
  const now = Date.now();
  let t = performance.now();
  const claimed = await client.query<{ id: string; attempts: number }>(SQL.claimTasks, [
    owner,
    now + 30_000,
    now,
    BATCH,
  ]);
  const claim = performance.now() - t;
  t = performance.now();
  await client.query(SQL.extendLeases, [owner, now + 60_000]);
  const heartbeat = performance.now() - t;
  const ids = claimed.rows.map((r) => r.id);
  t = performance.now();
  await client.query(SQL.completeTasks, [
    now,
    ids,
    ids.map(() => owner),
    claimed.rows.map((r) => r.attempts),
    ids.map(() => '1'),
  ]);
  return [claim, heartbeat, performance.now() - t];
}

const solo: Record<Setting, [number[], number[], number[]]> = { off: [[], [], []], on: [[], [], []] };
for (let i = 0; i < statements; i++) {
  for (const setting of i % 2 ? SETTINGS : ([...SETTINGS].reverse() as Setting[])) {
    const times = await iteration(main[setting], 'solo');
    times.forEach((ms, k) => solo[setting][k]!.push(ms));
  }
  if ((i + 1) % 1000 === 0) process.stderr.write(`${i + 1} / ${statements}\n`);
}

const parallel: Record<Setting, number[]> = { off: [], on: [] };
const peers: Record<Setting, pg.Client[]> = {
  off: await Promise.all(Array.from({ length: clients }, () => connect('off'))),
  on: await Promise.all(Array.from({ length: clients }, () => connect('on'))),
};
const perClient = Math.max(20, Math.floor(statements / PARALLEL_ROUNDS / clients));
for (let round = 0; round < PARALLEL_ROUNDS * 2; round++) {
  const setting = SETTINGS[round % 2]!;
  // put the queue back (the counters are not checked here)
  await main[setting].query(
    `UPDATE tasks SET status = 'queued', lease_owner = NULL WHERE status <> 'queued'`,
  );
  const started = performance.now();
  await Promise.all(
    peers[setting].map(async (c, i) => {
      for (let k = 0; k < perClient; k++) await iteration(c, `w${i}`);
    }),
  );
  parallel[setting].push((perClient * clients * 3) / ((performance.now() - started) / 1000));
}

const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor(q * xs.length)]! * 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `\n${statements} interleaved iterations per setting, ${BATCH} rows per claim and completion` +
    (asyncCommit ? ', synchronous_commit = off' : ', synchronous_commit = on'),
);
console.log(
  '| statement (µs, one client)  | no triggers: median (p10) | triggers: median (p10) |  added median |',
);
console.log(
  '|-----------------------------|--------------------------:|-----------------------:|--------------:|',
);
['claim of 7', 'heartbeat (no status change)', 'completion of 7'].forEach((label, k) => {
  const [off, on] = [solo.off[k]!, solo.on[k]!];
  const cell = (xs: number[]) => `${quantile(xs, 0.5).toFixed(0)} (${quantile(xs, 0.1).toFixed(0)})`;
  const added = quantile(on, 0.5) - quantile(off, 0.5);
  console.log(
    `| ${label.padEnd(27)} | ${cell(off).padStart(25)} | ${cell(on).padStart(22)} | ${added.toFixed(0).padStart(9)} µs |`,
  );
});
console.log(
  `| ${clients} clients at once (stm/s)  | ${median(parallel.off).toFixed(0).padStart(25)} | ${median(parallel.on).toFixed(0).padStart(22)} | ${((median(parallel.on) / median(parallel.off) - 1) * 100).toFixed(0).padStart(10)} %  |`,
);

for (const setting of SETTINGS) {
  for (const c of [main[setting], ...peers[setting]]) await c.end();
  await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schemaOf(setting)} CASCADE`));
}
