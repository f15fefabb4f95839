/**
 * The targets a run is checked against, by storage engine. On SQLite they are the first round's
 * fixed figures. On PostgreSQL they are issue 9's, against graphile-worker in the same run (the
 * machine is shared and noisy, so only same-run ratios mean anything):
 * - HTTP enqueue at >= 40 % of bare node:http;
 * - drain c2/p5 at >= 0.6 x graphile batched while holding at most concurrency + prefetch;
 * - drain c50/p100 at >= 1.2 x graphile batched;
 * - enqueue -> start p50, over HTTP and by library call, no worse than graphile c1's;
 * - server CPU per task of each drain below graphile batched's.
 * A target whose peer did not run has `pass: null`.
 */
import type { DrainResult } from '../scenarios/drain.js';
import type { PeerResult } from '../scenarios/peers.js';
import type { Report } from './report.js';

export interface Target {
  /** The goal, with the measured ratio where there is one. */
  goal: string;
  /** null when it could not be checked (its peer did not run). */
  pass: boolean | null;
}

/** A target as the table's target column shows it. */
export const shownTarget = (t: Target | undefined): string =>
  t === undefined ? '' : t.pass === null ? t.goal : `${t.goal}: ${mark(t.pass)}`;

export interface Targets {
  http?: Target;
  drainC2?: Target;
  drainC50?: Target;
  latency?: Target;
  library?: Target;
  pgCpuC2?: Target;
  pgCpuC50?: Target;
}

export const mark = (ok: boolean): string => (ok ? 'met' : 'NOT MET');
const fixed = (goal: string, pass: boolean): Target => ({ goal, pass });
const notRun = (peer: string): Target => ({ goal: `${peer}: not run`, pass: null });

function peer(r: Report, label: string): Record<string, unknown> | null {
  return r.peers?.find((p: PeerResult) => p.label === label && p.result)?.result ?? null;
}

function peerCpu(r: Report, label: string): number | null {
  return r.peers?.find((p) => p.label === label)?.pgCpu?.usPerTask ?? null;
}

function drainVsGraphile(r: Report, d: DrainResult, label: string, factor: number): Target {
  const rate = Number(peer(r, label)?.rate);
  if (!Number.isFinite(rate) || rate <= 0) return notRun(label);
  const ratio = d.rate / rate;
  const held = d.maxHeld <= d.concurrency + d.prefetch;
  return {
    goal: `>= ${factor} x ${label} (${ratio.toFixed(3)} x)${held ? '' : `; held ${d.maxHeld}`}`,
    pass: ratio >= factor && held,
  };
}

function cpuVsGraphile(r: Report, d: DrainResult | undefined, label: string): Target | undefined {
  const ours = d?.pgCpu?.usPerTask;
  if (ours === undefined) return undefined;
  const theirs = peerCpu(r, label);
  if (theirs === null) return notRun(label);
  return { goal: `< ${label} (${theirs} µs)`, pass: ours < theirs };
}

function latencyVsGraphile(r: Report, p50: number): Target {
  const theirs = Number(peer(r, 'graphile c1')?.p50_ms);
  if (!Number.isFinite(theirs)) return notRun('graphile c1');
  return { goal: `p50 <= graphile c1 (${theirs} ms)`, pass: p50 <= theirs };
}

export function targetsOf(r: Report): Targets {
  const postgres = r.storage === 'postgresql';
  const t: Targets = {};
  if (r.http)
    t.http = fixed(
      `>= ${postgres ? 40 : 50} % of bare (${Math.round(r.http.ratio * 100)} %)`,
      r.http.ratio >= (postgres ? 0.4 : 0.5),
    );
  if (r.drainC2)
    t.drainC2 = postgres
      ? drainVsGraphile(r, r.drainC2, 'graphile c2 batched', 0.6)
      : fixed('>= 20,000', r.drainC2.rate >= 20_000);
  if (r.drainC50 && postgres) t.drainC50 = drainVsGraphile(r, r.drainC50, 'graphile c50 batched', 1.2);
  if (r.latency) {
    t.latency = postgres ? latencyVsGraphile(r, r.latency.p50Ms) : fixed('p50 < 2 ms', r.latency.p50Ms < 2);
    if (postgres) t.library = latencyVsGraphile(r, r.latency.libraryP50Ms);
  }
  if (postgres) {
    const c2 = cpuVsGraphile(r, r.drainC2, 'graphile c2 batched');
    const c50 = cpuVsGraphile(r, r.drainC50, 'graphile c50 batched');
    if (c2) t.pgCpuC2 = c2;
    if (c50) t.pgCpuC50 = c50;
  }
  return t;
}

/** PASS/FAIL lines for the PostgreSQL targets that could be checked (SQLite's show in the table). */
export function targetVerdicts(r: Report, t: Targets): string[] {
  if (r.storage !== 'postgresql') return [];
  const named: [string, Target | undefined][] = [
    ['HTTP enqueue vs bare node:http', t.http],
    ['drain c2/p5 vs graphile c2 batched', t.drainC2],
    ['drain c50/p100 vs graphile c50 batched', t.drainC50],
    ['enqueue -> start over HTTP vs graphile c1', t.latency],
    ['enqueue -> start by library call vs graphile c1', t.library],
    ['PostgreSQL CPU per task, drain c2', t.pgCpuC2],
    ['PostgreSQL CPU per task, drain c50', t.pgCpuC50],
  ];
  return named
    .filter((n): n is [string, Target] => n[1] !== undefined && n[1].pass !== null)
    .map(([name, target]) => `${target.pass ? 'PASS' : 'FAIL'}: ${name}: ${target.goal}`);
}
