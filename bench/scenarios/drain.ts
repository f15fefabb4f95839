/**
 * Drain: N stored no-op tasks worked off by one process (a fresh process per run). On a local
 * PostgreSQL, the cluster's CPU per task is read twice: over the drain alone (in the child) and
 * over the child's whole life (here), which covers the same phases as a peer's `process` test:
 * connect and migrate, fill, drain, close.
 */
import { runChildScript } from '../lib/proc.js';
import { measurePgCpu, type PgCpuFigure } from '../lib/pg-cpu.js';
import { freshDb } from '../lib/store.js';
import type { BenchOptions } from '../lib/options.js';
import { runPeer, type PeerResult, type PeerTest } from './peers.js';

export interface DrainResult {
  n: number;
  concurrency: number;
  prefetch: number;
  ms: number;
  rate: number;
  firstMs: number;
  completedInDb: number;
  maxHeld: number;
  /** Tasks per claim statement and per result batch: what each statement's fixed cost divides by. */
  tasksPerClaim: number;
  tasksPerAckBatch: number;
  peakRssMiB: number;
  /** PostgreSQL cluster CPU from `pool.start()` to the last completion. */
  pgCpuDrain: PgCpuFigure | null;
  /** PostgreSQL cluster CPU over the child's whole life: fill + drain (as the peers measure). */
  pgCpu: PgCpuFigure | null;
  /** With a paired peer (runDrainPairs): every round's rates, this result being the median's. */
  pairs?: DrainPair[];
}

/** One round of a paired drain: taskq's drain and its peer's, back to back. */
export interface DrainPair {
  peer: string;
  taskqRate: number;
  peerRate: number;
  ratio: number;
}

export async function runDrain(
  opts: BenchOptions,
  concurrency: number,
  prefetch: number,
): Promise<DrainResult> {
  const db = await freshDb(opts.db);
  const { result, pgCpu } = await measurePgCpu(
    db,
    () =>
      runChildScript<Omit<DrainResult, 'pgCpu'>>(
        'drain.ts',
        { db, n: opts.drainTasks, concurrency, prefetch, timeoutMs: 120_000 },
        130_000,
      ),
    (r) => r.completedInDb,
  );
  if (result.completedInDb !== opts.drainTasks)
    throw new Error(`drain: ${result.completedInDb} of ${opts.drainTasks} completed in the database`);
  return { ...result, pgCpu };
}

/**
 * taskq's drain and its peer's (graphile-worker batched at the same concurrency) in alternating
 * rounds: taskq, peer, taskq, peer, ... The machine's speed drifts within minutes, so a ratio
 * means most when its two sides ran back to back. The round with the median ratio is reported:
 * its drain as taskq's figure and its peer run as the peer's (the peers table and the CPU
 * comparison use the same one). Rounds whose peer failed count for nothing; if all did, the last
 * drain is reported unpaired.
 */
export async function runDrainPairs(
  opts: BenchOptions,
  concurrency: number,
  prefetch: number,
  peerTest: PeerTest,
): Promise<{ drain: DrainResult; peer: PeerResult | null }> {
  const rounds: { drain: DrainResult; peer: PeerResult; pair: DrainPair }[] = [];
  let last: DrainResult | undefined;
  for (let i = 0; i < opts.drainRounds; i++) {
    last = await runDrain(opts, concurrency, prefetch);
    const peer = await runPeer(peerTest);
    const peerRate = Number(peer.result?.rate);
    if (!Number.isFinite(peerRate) || peerRate <= 0) continue;
    const pair = { peer: peerTest.label, taskqRate: last.rate, peerRate, ratio: last.rate / peerRate };
    rounds.push({ drain: last, peer, pair });
  }
  if (!last) throw new Error('drain: no round ran');
  if (rounds.length === 0) return { drain: last, peer: null };
  const median = [...rounds].sort((a, b) => a.pair.ratio - b.pair.ratio)[(rounds.length - 1) >> 1];
  if (!median) throw new Error('drain: no median round');
  return { drain: { ...median.drain, pairs: rounds.map((r) => r.pair) }, peer: median.peer };
}
