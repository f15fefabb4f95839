/**
 * HTTP enqueue: taskq (`--role api`, default durability: every 202 is fsync'd) against a bare
 * node:http server answering the same request, both separate processes loaded by autocannon from
 * this process, alternating in rounds so both see similar noise. Each server gets a short warm-up
 * whose rate sizes its measured runs (`amount`), so a run ends with no request in flight and the
 * 202 count can be checked exactly against the tasks stored.
 */
import autocannon, { type AutocannonResult } from 'autocannon';
import { benchScript, startChild, startTaskq, type Child } from '../lib/proc.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { freshDb, open, totalTasks } from '../lib/store.js';
import { round, sleep, waitUntil } from '../lib/util.js';
import type { BenchOptions } from '../lib/options.js';

export const BODY = JSON.stringify({ action: 'noop', data: { i: 1 } });

export interface LoadFigures {
  reqPerSec: number;
  requests: number;
  seconds: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  status2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export function figures(result: AutocannonResult): LoadFigures {
  const requests = result['2xx'] + result.non2xx;
  return {
    reqPerSec: round(requests / result.duration),
    requests,
    seconds: round(result.duration, 2),
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    status2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

export function load(url: string, connections: number, bound: { amount?: number; duration?: number }) {
  return autocannon({
    url: `${url}/tasks`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BODY,
    connections,
    timeout: 10,
    // autocannon notices that an `amount` run is done only at its next sample tick (1 s by
    // default), so its duration was rounded up to whole seconds: up to 10 % off on a 10 s run and
    // a third off on a short end-to-end run. Ticks every 10 ms bound that error to 10 ms.
    sampleInt: 10,
    ...bound,
  });
}

/** A short warm-up by time; its rate sizes the measured runs (`amount`) to last about `httpSeconds`. */
async function warmUp(url: string, opts: BenchOptions): Promise<number> {
  const warm = await load(url, opts.connections, { duration: opts.quick ? 1 : 2 });
  return Math.round(Math.max(100, warm['2xx'] / warm.duration) * opts.httpSeconds);
}

/** Requests cut off at the end of a warm-up may still commit: waits until the count is stable. */
async function stableCount(reader: QueueDriver): Promise<number> {
  let count = await totalTasks(reader);
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const again = await totalTasks(reader);
    if (again === count) break;
    count = again;
  }
  return count;
}

type TaskqRun = LoadFigures & { accepted202: number; tasksStored: number; exact: boolean };

export interface HttpResult {
  /** The best round of each server (the least disturbed by other tenants), and their ratio. */
  bare: LoadFigures & { peakRssMiB: number | null };
  taskq: TaskqRun & { peakRssMiB: number | null };
  ratio: number;
  /** Every round: bare then taskq, back to back, so each pair saw similar noise. */
  rounds: { bare: LoadFigures; taskq: TaskqRun; ratio: number }[];
}

async function startBare(): Promise<{ child: Child; url: string }> {
  const child = startChild([...benchScript('bench/children/bare-http.ts'), '0']);
  const ok = await waitUntil(() => /LISTENING \d+/.test(child.output()), { timeoutMs: 20_000 });
  const match = /LISTENING (\d+)/.exec(child.output());
  if (!ok || !match) throw new Error('bare node:http server did not start');
  return { child, url: `http://127.0.0.1:${match[1]}` };
}

export async function runHttp(opts: BenchOptions): Promise<HttpResult> {
  const db = await freshDb(opts.db);
  const reader = await open(db);
  const bareServer = await startBare();
  const server = await startTaskq({ db, role: 'api' });
  try {
    const bareAmount = await warmUp(bareServer.url, opts);
    const taskqAmount = await warmUp(server.url, opts);
    const rounds: HttpResult['rounds'] = [];
    for (let round_ = 0; round_ < opts.httpRounds; round_++) {
      const bare = figures(await load(bareServer.url, opts.connections, { amount: bareAmount }));
      const before = await stableCount(reader);
      const result = await load(server.url, opts.connections, { amount: taskqAmount });
      const accepted202 = result.statusCodeStats['202']?.count ?? 0;
      const tasksStored = (await totalTasks(reader)) - before;
      const taskq = { ...figures(result), accepted202, tasksStored, exact: accepted202 === tasksStored };
      rounds.push({ bare, taskq, ratio: round(taskq.reqPerSec / bare.reqPerSec, 3) });
    }
    const best = <T extends LoadFigures>(runs: T[]): T =>
      runs.reduce((a, b) => (b.reqPerSec > a.reqPerSec ? b : a));
    const bare = { ...best(rounds.map((r) => r.bare)), peakRssMiB: await bareServer.child.peakRss() };
    const taskqBest = best(rounds.map((r) => r.taskq));
    const taskq = {
      ...taskqBest,
      // Exact means every round: each 202 matches one stored task.
      exact: rounds.every((r) => r.taskq.exact),
      peakRssMiB: await server.child.peakRss(),
    };
    return { bare, taskq, ratio: round(taskq.reqPerSec / bare.reqPerSec, 3), rounds };
  } finally {
    await Promise.all([server.child.stop(), bareServer.child.stop()]);
    await reader.close();
  }
}
