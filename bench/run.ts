/**
 * `npm run bench`: taskq's throughput and latency, each measured beside a baseline in the same run
 * (the machine is shared and noisy, so ratios within one run mean more than absolute figures).
 * Scenarios: http (taskq vs bare node:http), drain (c2/p5 and c50), e2e, latency; opt-in:
 * scaling (--workers N), memory (--memory), tracing (--tracing: drain with no SDK, an unsampled and
 * a recording one), filters (--filters: GET /tasks filters on a million tasks) and peers (--peers, --peers-only LABEL,...). Results: a
 * table on stdout and JSON in bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, ROOT } from './lib/proc.js';
import { parseOptions, wants, type BenchOptions } from './lib/options.js';
import { machineInfo, renderReport, type Report } from './lib/report.js';
import { watchdog } from './lib/util.js';
import { runDrain, runDrainPairs, type DrainResult } from './scenarios/drain.js';
import { runE2e } from './scenarios/e2e.js';
import { runHttp } from './scenarios/http.js';
import { runLatency } from './scenarios/latency.js';
import { runMemory } from './scenarios/memory.js';
import {
  GRAPHILE_C2_BATCHED,
  INSTALL_HINT,
  peersInstalled,
  peerTests,
  runPeer,
  type PeerResult,
  type PeerTest,
} from './scenarios/peers.js';
import { runTracing } from './scenarios/tracing.js';
import { runFilters } from './scenarios/filters.js';
import { runScalingRow, scalingChecks, workerCounts } from './scenarios/scaling.js';

const opts: BenchOptions = parseOptions(process.argv.slice(2));
// Whole-run bound; children are killed with it.
watchdog((opts.peers ? 45 : 20) * 60_000 + (wants(opts, 'memory') ? 40 * 60_000 : 0), 'bench', killAll);

const report: Report = {
  startedAt: new Date().toISOString(),
  options: opts,
  machine: await machineInfo(),
  storage: opts.db?.startsWith('postgres') ? 'postgresql' : 'sqlite (temp file, synchronous=FULL)',
  errors: [],
};

async function step<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${name} ...\n`);
  try {
    return await fn();
  } catch (err) {
    const message = `${name}: ${(err as Error).message}`;
    report.errors.push(message);
    process.stderr.write(`  FAILED ${message}\n`);
    return undefined;
  }
}

if (wants(opts, 'http'))
  report.http = await step('http enqueue (taskq vs bare node:http)', () => runHttp(opts));
// Peer tests run at most once a run (the scaling checks and the peers table may share one).
const peerRuns = new Map<string, PeerResult>();
// On PostgreSQL, with graphile-worker batched among the peers, each drain alternates with it.
const pairsPeers = report.storage === 'postgresql' && wants(opts, 'peers') && peersInstalled();
async function drain(concurrency: number, prefetch: number): Promise<DrainResult> {
  const label = `graphile c${concurrency} batched`;
  const peerTest = pairsPeers ? peerTests(opts).find((t) => t.label === label) : undefined;
  if (!peerTest) return runDrain(opts, concurrency, prefetch);
  const { drain, peer } = await runDrainPairs(opts, concurrency, prefetch, peerTest);
  if (peer) peerRuns.set(label, peer);
  return drain;
}
if (wants(opts, 'drain')) {
  report.drainC2 = await step('drain c2/p5', () => drain(2, 5));
  report.drainC50 = await step('drain c50/p100', () => drain(50, 100));
}
if (wants(opts, 'e2e')) report.e2e = await step('end to end', () => runE2e(opts));
if (wants(opts, 'latency')) report.latency = await step('latency', () => runLatency(opts));
async function peer(test: PeerTest): Promise<PeerResult> {
  const done = peerRuns.get(test.label);
  if (done) return done;
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] peer ${test.label} ...\n`);
  const result = await runPeer(test);
  peerRuns.set(test.label, result);
  return result;
}

if (wants(opts, 'scaling')) {
  report.scaling = [];
  for (const n of workerCounts(opts.workers || 4)) {
    const row = await step(`scaling: ${n} worker process(es)`, () => runScalingRow(opts, n));
    if (row) report.scaling.push(row);
  }
  // The scale-out checks compare against graphile-worker batched in the same run (PostgreSQL).
  const reference = peerTests({ drainTasks: opts.drainTasks, peersOnly: [GRAPHILE_C2_BATCHED] })[0];
  if (report.scaling.some((r) => r.pgCpu) && reference && peersInstalled())
    report.scalingReference = await peer(reference);
  report.scalingChecks = scalingChecks(report.scaling, report.scalingReference?.pgCpu);
}
if (wants(opts, 'memory')) {
  report.memory = await step('memory', () => runMemory(opts));
  report.errors.push(...(report.memory?.errors.map((e) => `memory: ${e}`) ?? []));
}
if (wants(opts, 'tracing'))
  report.tracing = await step('tracing: drain off / unsampled / recording', () => runTracing(opts));
if (wants(opts, 'filters'))
  report.filters = await step(`filters at scale (${opts.filterRows.toLocaleString()} tasks)`, () =>
    runFilters(opts),
  );
if (wants(opts, 'peers')) {
  if (!peersInstalled()) {
    console.error(INSTALL_HINT);
    report.errors.push('peers not installed');
  } else {
    report.peers = [];
    for (const test of peerTests(opts)) report.peers.push(await peer(test));
  }
}

report.finishedAt = new Date().toISOString();
console.log(renderReport(report));
const dir = join(ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = opts.out ?? join(dir, `${report.startedAt.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
// latest.json (committed) is the last complete run, not a --quick or --only one.
if (!opts.quick && !opts.only)
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
console.log(`\nJSON: ${file}`);
process.exit(report.errors.length > 0 ? 1 : 0);
