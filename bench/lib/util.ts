/** Small shared helpers; every wait here is bounded in time. */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export const now = (): number => performance.now();

/**
 * A lean HTTP/1.1 JSON POST over one kept-alive connection (node:http), answering the status once
 * the body is read. The latency scenario times POSTs from inside the process that serves them;
 * `fetch` (undici, web streams) spent most of a millisecond of that process's own event loop per
 * request, which counted against the service it was measuring.
 */
export function jsonPoster(base: string): (path: string, body: unknown) => Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return (path, body) =>
    new Promise((resolve, reject) => {
      const text = JSON.stringify(body);
      const req = http.request(
        new URL(path, base),
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(text);
    });
}
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Nearest-rank percentile (the peers' common.mjs uses the same definition). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k] as number;
}

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it succeeded. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  { intervalMs = 10, timeoutMs = 60_000 } = {},
): Promise<boolean> {
  const end = now() + timeoutMs;
  while (now() < end) {
    if (await check()) return true;
    await sleep(intervalMs);
  }
  return false;
}

/** Hard stop for a benchmark process: no run may hang the machine. */
export function watchdog(ms: number, label: string, onFire: () => void = () => undefined): NodeJS.Timeout {
  const timer = setTimeout(() => {
    console.error(`watchdog: ${label} exceeded ${ms} ms`);
    onFire();
    process.exit(3);
  }, ms);
  timer.unref();
  return timer;
}

/** One machine-readable line from a child process; the parent looks for it. */
export function emitResult(result: object): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** A `kB` field of /proc/<pid>/status (VmHWM, VmRSS, ...) in MiB, or null (exited, not Linux). */
function procStatusMiB(pid: number, field: 'VmHWM' | 'VmRSS' | 'RssAnon'): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
    return match ? round(Number(match[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** Open file descriptors of a live Linux process (entries of /proc/<pid>/fd), or null. */
export function openFds(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** Peak resident set size of a live Linux process in MiB (VmHWM), or null elsewhere. */
export async function peakRssMiB(pid: number): Promise<number | null> {
  return Promise.resolve(procStatusMiB(pid, 'VmHWM'));
}

/**
 * Samples another process's resident set size (VmRSS of /proc/<pid>/status, MiB; or RssAnon, the
 * part that is not mapped files) every `intervalMs` while `active()` holds; `stop()` ends it and
 * returns the samples.
 */
export function sampleRss(
  pid: number,
  active: () => boolean = () => true,
  intervalMs = 1000,
  field: 'VmRSS' | 'RssAnon' = 'VmRSS',
): { stop(): number[] } {
  const samples: number[] = [];
  const timer = setInterval(() => {
    if (!active()) return;
    const rss = procStatusMiB(pid, field);
    if (rss !== null) samples.push(rss);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}
