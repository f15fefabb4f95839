/**
 * CPU time of the whole PostgreSQL cluster (postmaster and every process it forked), read from
 * /proc so it covers taskq and the peers alike without touching their code. A reading is
 *
 *   postmaster: on-CPU ns (schedstat) + cutime + cstime (children that exited, in clock ticks)
 *   + every live child of the postmaster: on-CPU ns (schedstat; utime + stime in ticks if absent)
 *
 * and a figure is the difference of two readings over a phase, divided by the tasks completed
 * in it. Backends are single-threaded processes, so a process's schedstat (its main thread) is
 * all of it. The postmaster is found as the parent of the bench's own backend
 * (`SELECT pg_backend_pid()`), which needs no superuser and proves the server is on this machine;
 * a server elsewhere gives no figure (null). Anything else the cluster does meanwhile (another
 * engineer's bench, autovacuum, checkpoints) is included; as a gauge of that noise, a figure
 * counts the transactions other databases committed during the phase and the rows inserted,
 * updated or deleted in the bench's database outside the schemas it measures (PostgreSQL's
 * cumulative statistics, flushed by backends within about a second: a gauge, not an exact count).
 */
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { isPostgresUrl } from '../../src/core/config.js';
import { SCHEMA_DEFAULT } from '../../src/drivers/postgres/postgres-driver.js';
import { round } from './util.js';

/** Clock ticks per second of utime/stime/cutime/cstime (`getconf CLK_TCK`; 100 on Linux). */
const CLK_TCK = 100;
const NS_PER_TICK = 1e9 / CLK_TCK;

export const PG_CPU_SOURCE =
  '/proc: postmaster schedstat ns + cutime/cstime ticks (exited children) + schedstat ns of each live child';

interface ProcCpu {
  ppid: number;
  /** utime + stime, in ns (tick resolution). */
  ownTicksNs: number;
  /** cutime + cstime, in ns (tick resolution). */
  childTicksNs: number;
}

function procStat(pid: number): ProcCpu | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: the fields after it start after the last ')'.
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    // f[0] is field 3 (state), so field k is f[k - 3].
    const at = (k: number): number => f[k - 3] ?? 0;
    return {
      ppid: at(4),
      ownTicksNs: (at(14) + at(15)) * NS_PER_TICK,
      childTicksNs: (at(16) + at(17)) * NS_PER_TICK,
    };
  } catch {
    return null;
  }
}

/** On-CPU ns from /proc/<pid>/schedstat, or null where the kernel has none. */
function schedNs(pid: number): number | null {
  try {
    const first = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0];
    const ns = Number(first);
    return Number.isFinite(ns) ? ns : null;
  } catch {
    return null;
  }
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // No CONFIG_PROC_CHILDREN: scan every process for this parent.
    return readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .filter((p) => procStat(p)?.ppid === pid);
  }
}

export interface PgCpuReading {
  /** Cluster CPU so far, ns. */
  ns: number;
  /** Whether every process was read through schedstat (else tick resolution for some). */
  schedstat: boolean;
  /** Cumulative counters of others' work, by database or table oid (see Noise). */
  noise: { xactsByDb: Record<string, number>; rowsByTable: Record<string, number> } | null;
}

/** Work by others, counted from PostgreSQL's statistics. */
export interface Noise {
  /** Transactions committed in databases other than the measured one. */
  otherDbXacts: number;
  /**
   * Rows inserted, updated or deleted in the measured database outside the measured schemas
   * (tables created meanwhile count in full; tables dropped meanwhile are missed).
   */
  otherSchemaRows: number;
}

/** Sum over b's keys of what grew since a (a key new in b counts from 0). */
function growth(a: Record<string, number>, b: Record<string, number>): number {
  return Object.entries(b).reduce((sum, [k, v]) => sum + Math.max(0, v - (a[k] ?? 0)), 0);
}

/** A meter for the cluster behind one database URL. */
export interface PgCpuMeter {
  postmasterPid: number;
  read(): Promise<PgCpuReading>;
  close(): Promise<void>;
}

/** The schema taskq uses for a URL (its `?schema=`, else the driver's default). */
export function taskqSchema(url: string): string {
  return new URL(url).searchParams.get('schema') ?? SCHEMA_DEFAULT;
}

/** The URL without taskq's own `?schema=` parameter (node-postgres would pass it on). */
export function plainPgUrl(url: string): string {
  const u = new URL(url);
  u.searchParams.delete('schema');
  return u.toString();
}

function clusterNs(postmaster: number): { ns: number; schedstat: boolean } | null {
  // Reaped children move into the postmaster's cutime/cstime: if that changed while the live
  // children were being read, one may be counted twice or not at all, so read again (bounded).
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = procStat(postmaster);
    if (!before) return null;
    let schedstat = true;
    const own = schedNs(postmaster);
    if (own === null) schedstat = false;
    let ns = (own ?? before.ownTicksNs) + before.childTicksNs;
    for (const child of children(postmaster)) {
      const s = schedNs(child);
      if (s !== null) ns += s;
      else {
        schedstat = false;
        ns += procStat(child)?.ownTicksNs ?? 0;
      }
    }
    if (procStat(postmaster)?.childTicksNs === before.childTicksNs) return { ns, schedstat };
  }
  return null;
}

/**
 * Opens a meter on the cluster serving `url`, or null if it is not PostgreSQL or not on this
 * machine. `ownSchemas` are the schemas whose row changes are not noise (null: all of the URL's
 * database); by default taskq's schema of the URL.
 */
export async function openPgCpuMeter(
  url: string | undefined,
  schemas?: string[] | null,
): Promise<PgCpuMeter | null> {
  if (!url || !isPostgresUrl(url)) return null;
  const ownSchemas = schemas === undefined ? [taskqSchema(url)] : schemas;
  const client = new pg.Client({ connectionString: plainPgUrl(url) });
  await client.connect();
  try {
    const row = (
      await client.query<{ pid: number; db: string }>(
        'SELECT pg_backend_pid() AS pid, current_database() AS db',
      )
    ).rows[0];
    const backend = row ? procStat(row.pid) : null;
    if (!row || !backend || clusterNs(backend.ppid) === null) {
      await client.end();
      return null;
    }
    const postmasterPid = backend.ppid;
    const counters = async (sql: string, params: unknown[]): Promise<Record<string, number>> => {
      const r = await client.query<{ k: string; n: string }>(sql, params);
      return Object.fromEntries(r.rows.map(({ k, n }) => [k, Number(n)]));
    };
    const noise = async (): Promise<PgCpuReading['noise']> => {
      try {
        return {
          xactsByDb: await counters(
            `SELECT datid::text AS k, xact_commit::text AS n FROM pg_stat_database
              WHERE datname IS NOT NULL AND datname <> $1`,
            [row.db],
          ),
          rowsByTable: await counters(
            `SELECT relid::text AS k, (n_tup_ins + n_tup_upd + n_tup_del)::text AS n FROM pg_stat_user_tables
              WHERE $1::text[] IS NOT NULL AND schemaname <> ALL ($1::text[])`,
            [ownSchemas],
          ),
        };
      } catch {
        return null;
      }
    };
    return {
      postmasterPid,
      async read() {
        const cpu = clusterNs(postmasterPid);
        if (!cpu) throw new Error(`postmaster ${postmasterPid} is gone`);
        return { ...cpu, noise: await noise() };
      },
      close: () => client.end(),
    };
  } catch (err) {
    await client.end();
    throw err;
  }
}

/** A phase's cluster CPU: total and per completed task. */
export interface PgCpuFigure {
  /** Cluster CPU over the phase, ms. */
  ms: number;
  /** Cluster CPU per completed task, µs. */
  usPerTask: number;
  tasks: number;
  /** Tick resolution was used for some process (no schedstat). */
  ticksOnly: boolean;
  /** Work by others meanwhile (see Noise). */
  noise: Noise | null;
}

export function pgCpuFigure(a: PgCpuReading, b: PgCpuReading, tasks: number): PgCpuFigure {
  const ns = b.ns - a.ns;
  return {
    ms: round(ns / 1e6, 1),
    usPerTask: round(ns / 1e3 / Math.max(1, tasks), 1),
    tasks,
    ticksOnly: !(a.schedstat && b.schedstat),
    noise:
      a.noise && b.noise
        ? {
            otherDbXacts: growth(a.noise.xactsByDb, b.noise.xactsByDb),
            otherSchemaRows: growth(a.noise.rowsByTable, b.noise.rowsByTable),
          }
        : null,
  };
}

/** A meter (null without a local PostgreSQL) opened right after a CHECKPOINT. */
export async function openCheckpointedMeter(
  url: string | undefined,
  ownSchemas?: string[] | null,
): Promise<PgCpuMeter | null> {
  const meter = await openPgCpuMeter(url, ownSchemas).catch(() => null);
  if (meter) await checkpoint(url);
  return meter;
}

/**
 * Measures `phase` with a meter on `url` (CHECKPOINTing first, when allowed, so dirty pages of
 * earlier work are not flushed inside this phase). `tasks` turns its result into the task count.
 * Without a local PostgreSQL, the figure is null and `phase` still runs.
 */
export async function measurePgCpu<T>(
  url: string | undefined,
  phase: () => Promise<T>,
  tasks: (result: T) => number,
  ownSchemas?: string[] | null,
): Promise<{ result: T; pgCpu: PgCpuFigure | null }> {
  const meter = await openCheckpointedMeter(url, ownSchemas);
  if (!meter) return { result: await phase(), pgCpu: null };
  try {
    const a = await meter.read();
    const result = await phase();
    const b = await meter.read();
    return { result, pgCpu: pgCpuFigure(a, b, tasks(result)) };
  } finally {
    await meter.close();
  }
}

/** CHECKPOINT (superuser or pg_checkpoint); silently skipped when the role may not. */
async function checkpoint(url: string | undefined): Promise<void> {
  if (!url) return;
  const client = new pg.Client({ connectionString: plainPgUrl(url) });
  try {
    await client.connect();
    await client.query('CHECKPOINT');
  } catch {
    // not allowed: the phase may then include writing out earlier dirty pages
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** "123.4 µs", with a "*" when others wrote to the cluster meanwhile; or "-". */
export function fmtPgCpu(f: PgCpuFigure | null | undefined): string {
  if (!f) return '-';
  const noisy = f.noise !== null && f.noise.otherDbXacts + f.noise.otherSchemaRows > 0;
  return `${f.usPerTask.toLocaleString('en-US', { maximumFractionDigits: 1 })} µs${noisy ? '*' : ''}`;
}
