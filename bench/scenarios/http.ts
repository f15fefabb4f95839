/**
 * HTTP enqueue: taskq (`--role api`, default durability: every 202 is fsync'd) against a bare
 * node:http server answering the same request, both separate processes loaded by autocannon from
 * this process. Each server gets a short warm-up whose rate sizes the measured run (`amount`), so
 * the measured run ends with no request in flight and the 202 count can be checked exactly.
 */
import autocannon, { type AutocannonResult } from 'autocannon';
import { startChild, startTaskq, type Child } from '../lib/proc.js';
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
    ...bound,
  });
}

/** Warm-up by time, then a measured run sized to last about `seconds`. */
async function warmThenMeasure(url: string, opts: BenchOptions): Promise<LoadFigures> {
  const warm = await load(url, opts.connections, { duration: opts.quick ? 1 : 2 });
  const rate = Math.max(100, warm['2xx'] / warm.duration);
  const amount = Math.round(rate * opts.httpSeconds);
  return figures(await load(url, opts.connections, { amount }));
}

export interface HttpResult {
  bare: LoadFigures & { peakRssMiB: number | null };
  taskq: LoadFigures & {
    peakRssMiB: number | null;
    accepted202: number;
    tasksStored: number;
    exact: boolean;
  };
  ratio: number;
}

async function startBare(): Promise<{ child: Child; url: string }> {
  const child = startChild(['--import', 'tsx', 'bench/children/bare-http.ts', '0']);
  const ok = await waitUntil(() => /LISTENING \d+/.test(child.output()), { timeoutMs: 20_000 });
  const match = /LISTENING (\d+)/.exec(child.output());
  if (!ok || !match) throw new Error('bare node:http server did not start');
  return { child, url: `http://127.0.0.1:${match[1]}` };
}

export async function runHttp(opts: BenchOptions): Promise<HttpResult> {
  const bareServer = await startBare();
  let bare: HttpResult['bare'];
  try {
    bare = { ...(await warmThenMeasure(bareServer.url, opts)), peakRssMiB: await bareServer.child.peakRss() };
  } finally {
    await bareServer.child.stop();
  }

  const db = await freshDb(opts.db);
  const reader = await open(db);
  const server = await startTaskq({ db, role: 'api' });
  try {
    const warm = await load(server.url, opts.connections, { duration: opts.quick ? 1 : 2 });
    // Requests cut off at the end of the warm-up may still commit: wait until the count is stable.
    let before = await totalTasks(reader);
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      const again = await totalTasks(reader);
      if (again === before) break;
      before = again;
    }
    const amount = Math.round(Math.max(100, warm['2xx'] / warm.duration) * opts.httpSeconds);
    const result = await load(server.url, opts.connections, { amount });
    const measured = figures(result);
    const accepted202 = result.statusCodeStats['202']?.count ?? 0;
    const tasksStored = (await totalTasks(reader)) - before;
    const taskq = {
      ...measured,
      peakRssMiB: await server.child.peakRss(),
      accepted202,
      tasksStored,
      exact: accepted202 === tasksStored,
    };
    return { bare, taskq, ratio: round(taskq.reqPerSec / bare.reqPerSec, 3) };
  } finally {
    await server.child.stop();
    await reader.close();
  }
}
