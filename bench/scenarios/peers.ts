/**
 * The peers (BullMQ, pg-boss, graphile-worker) measured in the same run, through the scripts of
 * /work/shared/peers-bench installed by its setup.sh + sync.sh in $PEERBENCH_DIR. Each test is one
 * fresh process printing a `RESULT {json}` line, as in the peers' own run-all.mjs.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PEERBENCH_DIR = process.env.PEERBENCH_DIR ?? join(process.env.TMPDIR ?? tmpdir(), 'peerbench');

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

/** A subset of the peers' run-all.mjs matrix: the tests that match taskq's scenarios. */
export function peerTests(quick: boolean): PeerTest[] {
  const n = quick ? 5000 : 20000;
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

export type PeerResult = PeerTest & { result: Record<string, unknown> | null; error?: string };

/** Runs one peer test in a fresh process (killed after `timeoutMs`). */
export function runPeer(test: PeerTest, timeoutMs = 240_000): Promise<PeerResult> {
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
  return `${String(res.rate)} jobs/s${res.ok === false ? ' (not ok)' : ''}`;
}
