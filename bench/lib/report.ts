/** The bench's result document and its table. */
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import type { BenchOptions } from './options.js';
import type { DrainResult } from '../scenarios/drain.js';
import type { E2eResult } from '../scenarios/e2e.js';
import type { HttpResult } from '../scenarios/http.js';
import type { LatencyResult } from '../scenarios/latency.js';
import type { TracingResult } from '../scenarios/tracing.js';
import type { FiltersResult } from '../scenarios/filters.js';
import { memoryVerdicts, type MemoryResult, type RssSummary } from '../scenarios/memory.js';
import { peerFigure, type PeerResult } from '../scenarios/peers.js';
import type { ScalingCheck, ScalingRow } from '../scenarios/scaling.js';
import { fmtPgCpu, PG_CPU_SOURCE } from './pg-cpu.js';
import { mark, shownTarget as shown, targetsOf, targetVerdicts, type Target } from './targets.js';
import { sleep } from './util.js';

export interface Report {
  startedAt: string;
  finishedAt?: string;
  options: BenchOptions;
  machine: Record<string, unknown>;
  storage: string;
  http?: HttpResult;
  drainC2?: DrainResult;
  drainC50?: DrainResult;
  e2e?: E2eResult;
  latency?: LatencyResult;
  scaling?: ScalingRow[];
  /** graphile-worker c2 batched, run for the scaling checks. */
  scalingReference?: PeerResult;
  scalingChecks?: ScalingCheck[];
  memory?: MemoryResult;
  tracing?: TracingResult;
  filters?: FiltersResult[];
  peers?: PeerResult[];
  errors: string[];
}

/** The machine a run happened on, and how busy it was at the start. */
export async function machineInfo(): Promise<Record<string, unknown>> {
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    idlePctAtStart: await idlePercent(),
  };
}

/** CPU idle over 0.5 s (Linux /proc/stat), to show how busy the shared machine was; null elsewhere. */
export async function idlePercent(): Promise<number | null> {
  const read = () => {
    const fields =
      readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total: fields.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await sleep(500);
    const b = read();
    return Math.round((100 * (b.idle - a.idle)) / Math.max(1, b.total - a.total));
  } catch {
    return null;
  }
}

const fmt = (n: number | null | undefined, digits = 0): string =>
  n === null || n === undefined || Number.isNaN(n)
    ? '-'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Tasks per claim and per result batch: what each statement's fixed cost is shared by. */
const roundTrips = (d: DrainResult): string =>
  `${fmt(d.tasksPerClaim, 1)} tasks per claim, ${fmt(d.tasksPerAckBatch)} per result batch`;

/** The alternating rounds beside the peer, when there were any: which one the row shows. */
const pairRounds = (d: DrainResult): string =>
  d.pairs && d.pairs.length > 0
    ? `; the median of ${d.pairs.length} rounds alternating with ${d.pairs[0]?.peer ?? 'the peer'} (ratio per round ${d.pairs.map((p) => `${fmt(p.ratio, 3)} x`).join(', ')})`
    : '';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ') + ' |';
  return [
    line(rows[0] ?? []),
    '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |',
    ...rows.slice(1).map(line),
  ].join('\n');
}

export function renderReport(r: Report): string {
  const rows: string[][] = [['scenario', 'taskq', 'baseline / detail', 'target']];
  const targets = targetsOf(r);
  if (r.http) {
    const { taskq, bare, ratio } = r.http;
    rows.push([
      `HTTP enqueue, ${r.options.connections} conns (req/s)`,
      fmt(taskq.reqPerSec),
      `bare node:http ${fmt(bare.reqPerSec)}; ratio ${fmt(ratio * 100)} % (best of ${r.http.rounds.length}; per round ${r.http.rounds.map((x) => `${fmt(x.ratio * 100)} %`).join(', ')})`,
      shown(targets.http),
    ]);
    rows.push([
      '  latency p50 / p99 (ms)',
      `${taskq.latencyP50Ms} / ${taskq.latencyP99Ms}`,
      `bare ${bare.latencyP50Ms} / ${bare.latencyP99Ms}`,
      '',
    ]);
    rows.push([
      '  non-2xx / errors; 202s vs tasks stored',
      `${taskq.non2xx} / ${taskq.errors}`,
      `${fmt(taskq.accepted202)} 202s, ${fmt(taskq.tasksStored)} tasks stored`,
      `exact: ${taskq.exact ? 'yes' : 'NO'}`,
    ]);
  }
  const drainCpuRow = (d: DrainResult, row: PeerResult['row'], target: Target | undefined): void => {
    if (!d.pgCpu) return;
    const peers = (r.peers ?? [])
      .filter((p) => p.row === row && p.pgCpu)
      .map((p) => `${p.label} ${fmtPgCpu(p.pgCpu)}`);
    rows.push([
      '  PostgreSQL CPU per task, fill + drain',
      fmtPgCpu(d.pgCpu),
      `drain only ${fmtPgCpu(d.pgCpuDrain)}${peers.length > 0 ? `; peers (whole process) ${peers.join(', ')}` : ''}`,
      shown(target),
    ]);
  };
  if (r.drainC2) {
    const d = r.drainC2;
    rows.push([
      `drain ${fmt(d.n)}, c${d.concurrency} p${d.prefetch} (tasks/s)`,
      fmt(d.rate),
      `${fmt(d.ms)} ms; first ack ${d.firstMs} ms; max held ${d.maxHeld}; ${roundTrips(d)}${pairRounds(d)}`,
      shown(targets.drainC2),
    ]);
    drainCpuRow(d, 'drain-c2', targets.pgCpuC2);
  }
  if (r.drainC50) {
    const d = r.drainC50;
    rows.push([
      `drain ${fmt(d.n)}, c${d.concurrency} p${d.prefetch} (tasks/s)`,
      fmt(d.rate),
      `${fmt(d.ms)} ms; max held ${d.maxHeld}; ${roundTrips(d)}${pairRounds(d)}`,
      shown(targets.drainC50),
    ]);
    drainCpuRow(d, 'drain-c50', targets.pgCpuC50);
  }
  if (r.e2e) {
    const e = r.e2e;
    rows.push([
      `end to end ${fmt(e.n)} via HTTP, role all (tasks/s)`,
      fmt(e.rate),
      `HTTP ${fmt(e.http.reqPerSec)} req/s, p99 ${e.http.latencyP99Ms} ms, non-2xx ${e.http.non2xx}`,
      '',
    ]);
  }
  if (r.latency) {
    const l = r.latency;
    rows.push([
      `enqueue->start, ${l.count} tasks every ${l.gapMs} ms (ms)`,
      `p50 ${l.p50Ms} / p99 ${l.p99Ms}`,
      `max ${l.maxMs}; POST itself p50 ${l.postP50Ms} / p99 ${l.postP99Ms}; bare durable commit (floor) p50 ${l.commitP50Ms} / p99 ${l.commitP99Ms}`,
      shown(targets.latency),
    ]);
    rows.push([
      '  the same via TaskQueue.enqueue() (ms)',
      `p50 ${l.libraryP50Ms} / p99 ${l.libraryP99Ms}`,
      "in-process library call, like the peers' queue.add()",
      shown(targets.library),
    ]);
  }
  if (r.tracing) {
    const t = r.tracing;
    for (const row of t.rows) {
      rows.push([
        `drain ${fmt(t.n)}, c${t.concurrency} p${t.prefetch}, tracing ${row.mode} (tasks/s)`,
        fmt(row.rate),
        `median of ${row.rates.map((x) => fmt(x)).join(', ')}; ${row.cpuUsPerTask} µs CPU/task; ${fmt(row.spans)} spans`,
        `${row.ratio} x off`,
      ]);
    }
  }
  for (const f of r.filters ?? []) {
    for (const row of f.results) {
      rows.push([
        `filters, ${fmt(f.rows)} tasks on ${f.db}: ${row.name} (ms, server)`,
        `p50 ${row.p50.toFixed(2)} / p99 ${row.p99.toFixed(2)}`,
        `max ${row.max.toFixed(1)}; ${row.rows ?? ''} rows${row.scans ? ', one scan window' : ''}`,
        `p50 < 50 ms: ${mark(row.p50 < 50)}`,
      ]);
    }
  }
  const rss = [
    r.http ? `api ${fmt(r.http.taskq.peakRssMiB)} (bare ${fmt(r.http.bare.peakRssMiB)})` : null,
    r.drainC2 ? `drain c2 ${fmt(r.drainC2.peakRssMiB)}` : null,
    r.drainC50 ? `drain c50 ${fmt(r.drainC50.peakRssMiB)}` : null,
    r.e2e ? `all ${fmt(r.e2e.peakRssMiB)}` : null,
  ].filter(Boolean);
  if (rss.length > 0) rows.push(['peak RSS (MiB)', '', rss.join('; '), '']);
  for (const s of r.scaling ?? []) {
    rows.push([
      `scaling: ${s.workers} worker process(es), c${s.concurrency} p${s.prefetch} (tasks/s)`,
      fmt(s.rate),
      `${fmt(s.ms)} ms incl. insert; RSS each ${s.peakRssMiBEach.map((x) => fmt(x)).join(', ')} MiB`,
      '',
    ]);
    if (s.pgCpu)
      rows.push([
        '  PostgreSQL CPU per task, workers start to exit',
        fmtPgCpu(s.pgCpu),
        `fill + drain only ${fmtPgCpu(s.pgCpuClock)}`,
        '',
      ]);
  }
  if (r.scalingReference?.pgCpu)
    rows.push([
      `  reference: ${r.scalingReference.label}, whole process`,
      '',
      `PostgreSQL CPU per job ${fmtPgCpu(r.scalingReference.pgCpu)}; ${String(r.scalingReference.result?.rate)} jobs/s`,
      '',
    ]);
  const memoryRow = (name: string, m: RssSummary | undefined, detail: string): void => {
    if (!m) return;
    rows.push([
      `memory: ${name} (RSS MiB)`,
      `peak ${fmt(m.peakMiB)}`,
      `first quarter ${fmt(m.firstQuarterMiB)}, last quarter ${fmt(m.lastQuarterMiB)} (${fmt(m.drift * 100, 1)} %), ${m.samples} samples; ${detail}`,
      `peak < 150: ${mark(m.peakOk)}; drift <= 10 %: ${mark(m.driftOk)}`,
    ]);
  };
  const mw = r.memory?.worker;
  memoryRow(
    `worker c${mw?.concurrency ?? '-'} p${mw?.prefetch ?? '-'} draining ${fmt(mw?.n)}`,
    mw,
    `${fmt(mw?.rate)} tasks/s`,
  );
  const ma = r.memory?.api;
  memoryRow(
    `api node, ${fmt(ma?.load.seconds)} s of POSTs`,
    ma,
    `${fmt(ma?.load.reqPerSec)} req/s, ${fmt(ma?.tasksStored)} tasks stored`,
  );
  const out = [
    `taskq bench, ${r.startedAt} (${r.storage}); node ${String(r.machine.node)}, ${String(r.machine.cpus)} cpus, idle at start ${String(r.machine.idlePctAtStart)} %`,
    '',
    table(rows),
  ];
  if (r.peers && r.peers.length > 0) {
    out.push('', 'Peers, same run (scripts of /work/shared/peers-bench):', '');
    out.push(table([['beside', 'peer', 'figure'], ...r.peers.map((p) => [p.row, p.label, peerFigure(p)])]));
  }
  const cpuShown = [r.drainC2?.pgCpu, r.drainC50?.pgCpu, r.scaling?.[0]?.pgCpu].some(Boolean);
  if (cpuShown)
    out.push(
      '',
      `PostgreSQL CPU: whole cluster, user + system, ${PG_CPU_SOURCE}. * = others wrote to the cluster meanwhile (noise; counts in the JSON).`,
    );
  if (r.memory) out.push('', `Memory: ${r.memory.source}.`);
  const verdicts = [
    ...targetVerdicts(r, targets),
    ...(r.scalingChecks ?? []).map(
      (c) => `${c.pass === null ? 'N/A' : c.pass ? 'PASS' : 'FAIL'}: ${c.name}: ${c.detail}`,
    ),
    ...(r.memory ? memoryVerdicts(r.memory) : []),
  ];
  if (verdicts.length > 0) out.push('', ...verdicts);
  if (r.errors.length > 0) out.push('', 'ERRORS:', ...r.errors.map((e) => `  ${e}`));
  return out.join('\n');
}
