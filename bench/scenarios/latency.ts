/**
 * Enqueue -> start latency at light load: the service runs in this process (as the peers run
 * producer and worker in one process), tasks are POSTed over HTTP one every `gapMs` (node:http on
 * one kept-alive connection: see jsonPoster), and the latency is handler entry minus the time just
 * before the POST. A second series enqueues through the library call instead (TaskQueue.enqueue,
 * the equivalent of the peers' queue.add()).
 */
import { resolveConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/logger.js';
import { TaskqNode } from '../../src/service.js';
import type { QueueDriver } from '../../src/drivers/driver.js';
import { freshDb, noopTask } from '../lib/store.js';
import { jsonPoster, now, percentile, round, sleep, waitUntil } from '../lib/util.js';
import type { BenchOptions } from '../lib/options.js';

export interface LatencyResult {
  count: number;
  gapMs: number;
  started: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  postP50Ms: number;
  postP99Ms: number;
  /** Baseline: one durable single-task commit through the driver (the floor under a 202). */
  commitP50Ms: number;
  commitP99Ms: number;
  /** The same paced load through the library call (TaskQueue.enqueue), as the peers use add(). */
  libraryP50Ms: number;
  libraryP99Ms: number;
}

/**
 * The storage floor of the same run: `count` single-task inserts, each its own durable commit,
 * straight through the driver (no HTTP). A POST can't answer faster than this.
 */
async function commitTimes(driver: QueueDriver, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await driver.insertTasks({ tasks: [noopTask(i, Date.now())], now: Date.now() });
    times.push(now() - t0);
  }
  return times;
}

export async function runLatency(opts: BenchOptions, gapMs = 5): Promise<LatencyResult> {
  const db = await freshDb(opts.db);
  const config = resolveConfig({ db, port: 0, host: '127.0.0.1', role: 'all', logLevel: 'warn' });
  const latencies: number[] = [];
  const service = await TaskqNode.create({
    config,
    logger: createLogger('warn'),
    handlers: [
      {
        action: 'latency',
        handle: (task) => {
          latencies.push(now() - Number(task.data.t0));
          return null;
        },
      },
    ],
  });
  // Before the pool starts; it works these probe tasks off during the settle pause below.
  const commits = await commitTimes(service.driver, opts.latencyTasks);
  const address = await service.start();
  try {
    await sleep(300); // let the pool work off the probes and reach its idle state
    const postMs: number[] = [];
    const post = jsonPoster(address);
    const start = now();
    for (let i = 0; i < opts.latencyTasks; i++) {
      const wait = start + i * gapMs - now();
      if (wait > 0) await sleep(wait);
      const t0 = now();
      const status = await post('/tasks', { action: 'latency', data: { i, t0 } });
      postMs.push(now() - t0);
      if (status !== 202) throw new Error(`latency: POST answered ${status}`);
    }
    await waitUntil(() => latencies.length >= opts.latencyTasks, { intervalMs: 5, timeoutMs: 30_000 });
    const overHttp = latencies.splice(0);
    // Second series: the producer calls the queue in-process, like the peers' queue.add().
    const libraryStart = now();
    for (let i = 0; i < opts.latencyTasks; i++) {
      const wait = libraryStart + i * gapMs - now();
      if (wait > 0) await sleep(wait);
      await service.queue.enqueue({ action: 'latency', data: { i, t0: now() } });
    }
    await waitUntil(() => latencies.length >= opts.latencyTasks, { intervalMs: 5, timeoutMs: 30_000 });
    const library = latencies.splice(0);
    latencies.push(...overHttp);
    return {
      count: opts.latencyTasks,
      gapMs,
      started: latencies.length,
      p50Ms: round(percentile(latencies, 50), 2),
      p90Ms: round(percentile(latencies, 90), 2),
      p99Ms: round(percentile(latencies, 99), 2),
      maxMs: round(Math.max(...latencies), 2),
      postP50Ms: round(percentile(postMs, 50), 2),
      postP99Ms: round(percentile(postMs, 99), 2),
      commitP50Ms: round(percentile(commits, 50), 2),
      commitP99Ms: round(percentile(commits, 99), 2),
      libraryP50Ms: round(percentile(library, 50), 2),
      libraryP99Ms: round(percentile(library, 99), 2),
    };
  } finally {
    await service.stop();
  }
}
