/**
 * The peers (BullMQ, pg-boss, graphile-worker) measured in the same run, through the scripts of
 * /work/shared/peers-bench installed by its setup.sh + sync.sh in $PEERBENCH_DIR. Each test is one
 * fresh process printing a `RESULT {json}` line, as in the peers' own run-all.mjs.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchOptions } from '../lib/options.js';
import { fmtPgCpu, measurePgCpu, type PgCpuFigure } from '../lib/pg-cpu.js';

export const PEERBENCH_DIR = process.env.PEERBENCH_DIR ?? join(process.env.TMPDIR ?? tmpdir(), 'peerbench');

/** The database the PostgreSQL peers use (as in their common.mjs). */
export const PEER_PG_URL = process.env.PG_URL ?? 'postgres://bench:bench@127.0.0.1:5432/peerbench';
const PG_SCRIPTS = new Set(['bench-graphile.mjs', 'bench-pgboss.mjs']);

export const INSTALL_HINT = `peers are not installed in ${PEERBENCH_DIR}. Install them with:
  bash /work/shared/peers-bench/setup.sh && bash /work/shared/peers-bench/sync.sh
(setup.sh installs Redis, starts PostgreSQL 15 and Redis, creates role bench; see its RESULTS.md)`;

export function peersInstalled(): boolean {
  return (
    existsSync(join(PEERBENCH_DIR, 'node_modules', 'bullmq')) &&
    existsSync(join(PEERBENCH_DIR, 'bench-bullmq.mjs'))
  );
}

export interface PeerTest {
  /** Which taskq row it sits beside. */
  row: 'http' | 'http-e2e' | 'drain-c2' | 'drain-c50' | 'latency';
  label: string;
  script: string;
  test: string;
  cfg: object;
}

const BATCHED = { localQueue: { size: 100 }, completeJobBatchDelay: 0 };

/** The label of the peer the scaling checks compare against. */
export const GRAPHILE_C2_BATCHED = 'graphile c2 batched';

/** The drain tests at concurrency `c`: BullMQ, pg-boss (one poller, batch c), graphile both ways. */
function drainTests(n: number, c: number): PeerTest[] {
  const row = c === 2 ? 'drain-c2' : 'drain-c50';
  const pgBoss = { localConcurrency: 1, batchSize: c, burstWhenBatchFull: true };
  const tests: [string, string, object][] = [
    [`BullMQ c${c}`, 'bench-bullmq.mjs', { n, concurrency: c }],
    [`pg-boss 1 poller x batch ${c}`, 'bench-pgboss.mjs', { n, work: pgBoss }],
    [`graphile c${c} defaults`, 'bench-graphile.mjs', { n, concurrency: c }],
    [`graphile c${c} batched`, 'bench-graphile.mjs', { n, concurrency: c, worker: BATCHED }],
  ];
  return tests.map(([label, script, cfg]) => ({ row, label, script, test: 'process', cfg }));
}

/**
 * A subset of the peers' run-all.mjs matrix: the tests that match taskq's scenarios, the drains
 * at taskq's drain size. `--peers-only a,b` keeps the tests whose label contains a or b.
 */
export function peerTests(opts: Pick<BenchOptions, 'drainTasks' | 'peersOnly'>): PeerTest[] {
  const filter = opts.peersOnly?.map((f) => f.toLowerCase());
  return allPeerTests(opts.drainTasks).filter(
    (t) => !filter || filter.some((f) => t.label.toLowerCase().includes(f)),
  );
}

function allPeerTests(n: number): PeerTest[] {
  return [
    {
      row: 'http',
      label: 'node:http -> BullMQ add',
      script: 'bench-http.mjs',
      test: 'bullmq',
      cfg: { connections: 50 },
    },
    {
      row: 'http-e2e',
      label: 'node:http -> BullMQ add + worker c50',
      script: 'bench-http.mjs',
      test: 'bullmq',
      cfg: { connections: 50, worker: 50 },
    },
    ...[2, 50].flatMap((c) => drainTests(n, c)),
    {
      row: 'latency',
      label: 'BullMQ c1',
      script: 'bench-bullmq.mjs',
      test: 'latency',
      cfg: { concurrency: 1 },
    },
    {
      row: 'latency',
      label: 'pg-boss notify, batch 10',
      script: 'bench-pgboss.mjs',
      test: 'latency',
      cfg: {
        boss: { useListenNotify: true },
        queue: { notify: true },
        work: { localConcurrency: 1, batchSize: 10, burstWhenBatchFull: true },
      },
    },
    {
      row: 'latency',
      label: 'graphile c1',
      script: 'bench-graphile.mjs',
      test: 'latency',
      cfg: { concurrency: 1 },
    },
  ];
}

export type PeerResult = PeerTest & {
  result: Record<string, unknown> | null;
  error?: string;
  /** PostgreSQL cluster CPU over the peer's whole process, per completed job (PostgreSQL peers). */
  pgCpu?: PgCpuFigure | null;
};

/**
 * Runs one peer test in a fresh process; for a PostgreSQL peer's drain, with the cluster's CPU
 * read right before the spawn and right after the exit (its script is not touched, so the figure
 * covers all it does: connect, migrate, truncate, checkpoint, fill, analyze, process).
 */
export async function runPeer(test: PeerTest, timeoutMs = 240_000): Promise<PeerResult> {
  if (!PG_SCRIPTS.has(test.script) || test.test !== 'process') return spawnPeer(test, timeoutMs);
  const completed = (r: PeerResult): number => Number(r.result?.completed ?? 0);
  // The whole peerbench database is the peer's: only other databases count as noise there.
  const { result, pgCpu } = await measurePgCpu(
    PEER_PG_URL,
    () => spawnPeer(test, timeoutMs),
    completed,
    null,
  );
  return { ...result, pgCpu };
}

function spawnPeer(test: PeerTest, timeoutMs: number): Promise<PeerResult> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [join(PEERBENCH_DIR, test.script), test.test, JSON.stringify(test.cfg)],
      {
        cwd: PEERBENCH_DIR,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) {
        resolve({ ...test, result: null, error: `no result (exit ${code ?? signal}): ${err.slice(-300)}` });
        return;
      }
      const result = JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown>;
      resolve({ ...test, result, error: typeof result.error === 'string' ? result.error : undefined });
    });
  });
}

/** The headline figure of a peer result, in the unit of its row. */
export function peerFigure(r: PeerResult): string {
  const res = r.result;
  if (!res) return `error: ${r.error ?? '?'}`;
  if (r.row === 'latency') return `p50 ${String(res.p50_ms)} / p99 ${String(res.p99_ms)} ms`;
  if (r.row === 'http' || r.row === 'http-e2e') {
    const extra = r.row === 'http-e2e' ? `, drained ${String(res.drained)}` : '';
    return `${String(res.req_s_avg)} req/s, p50 ${String(res.lat_p50_ms)} / p99 ${String(res.lat_p99_ms)} ms${extra}`;
  }
  const cpu = r.pgCpu ? `; PostgreSQL CPU ${fmtPgCpu(r.pgCpu)}/job (whole process)` : '';
  return `${String(res.rate)} jobs/s${res.ok === false ? ' (not ok)' : ''}${cpu}`;
}
