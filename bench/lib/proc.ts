/**
 * Child processes of the bench: every child is tracked so the watchdog (and an exit of the bench
 * for any reason) kills it; nothing outlives a run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peakRssMiB, sleep, waitUntil } from './util.js';

/**
 * The tree this file runs from: the repository when run through tsx, `.bench-build/` when run
 * compiled (`npm run bench` compiles the bench with tsconfig.bench.json and runs that).
 */
const TREE = fileURLToPath(new URL('../../', import.meta.url));
/** Whether the bench runs compiled: then its children run compiled too. */
const COMPILED = import.meta.url.endsWith('.js');

/** The repository: the nearest folder at or above the tree with a package.json. */
function repositoryRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir.endsWith('/') ? dir : `${dir}/`;
    if (dirname(dir) === dir) throw new Error(`no package.json at or above ${from}`);
  }
}

export const ROOT = repositoryRoot(TREE);
export const TASKQ_BIN = `${ROOT}bin/taskq.js`;
/** The V8 flags bin/taskq.js's shebang and `npm start` run taskq with. */
export const TASKQ_NODE_FLAGS = ['--max-semi-space-size=4', '--heap-growing-percent=50'];

const live = new Set<ChildProcess>();

export function killAll(): void {
  for (const child of live) if (child.exitCode === null && child.pid) child.kill('SIGKILL');
}
process.on('exit', killAll);

export interface Child {
  process: ChildProcess;
  pid: number;
  /** stdout so far (children print their RESULT line there). */
  output(): string;
  /** Peak RSS (MiB) while still running. */
  peakRss(): Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export function startChild(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  // Children log at warn: anything they print on stderr is worth seeing.
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const pid = child.pid ?? -1;
  return {
    process: child,
    pid,
    output: () => out,
    peakRss: () => peakRssMiB(pid),
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/**
 * The node arguments that run a bench script (a path under bench/, written with its .ts name):
 * its compiled JavaScript when the bench runs compiled, else the TypeScript through tsx. Compiled
 * is what `npm run bench` measures: tsx's transform wraps every function it creates in a naming
 * helper, which cost the drain child a quarter of its CPU per task (docs/benchmarks.md).
 */
export function benchScript(path: string): string[] {
  return COMPILED ? [join(TREE, path.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', join(ROOT, path)];
}

/**
 * Runs a bench child script (bench/children/, see benchScript) to completion and returns its RESULT;
 * `watch` sees the child as soon as it is spawned. A child runs taskq's worker pool in its own
 * process, so it runs with the V8 flags a `taskq` process has (TASKQ_NODE_FLAGS).
 */
export async function runChildScript<T>(
  script: string,
  config: object,
  timeoutMs: number,
  watch: (child: Child) => void = () => undefined,
): Promise<T> {
  const child = startChild([
    ...TASKQ_NODE_FLAGS,
    ...benchScript(`bench/children/${script}`),
    JSON.stringify(config),
  ]);
  watch(child);
  const timer = setTimeout(() => void child.stop(1000), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  const line = child
    .output()
    .split('\n')
    .find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`${script} gave no result (exit code ${code})`);
  return JSON.parse(line.slice('RESULT '.length)) as T;
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Waits (bounded) until GET `url` answers 200. */
export async function waitHealthy(url: string, child: Child, timeoutMs = 20_000): Promise<void> {
  const ok = await waitUntil(
    async () => {
      if (child.process.exitCode !== null) throw new Error(`child exited early (${child.process.exitCode})`);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    { intervalMs: 50, timeoutMs },
  );
  if (!ok) throw new Error(`${url} not healthy within ${timeoutMs} ms`);
}

/** Starts `taskq run` with the given role and flags, waits until /healthz answers. */
export async function startTaskq(options: {
  db: string;
  role: 'api' | 'worker' | 'all';
  extra?: string[];
}): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const args = [
    ...TASKQ_NODE_FLAGS,
    TASKQ_BIN,
    'run',
    '--db',
    options.db,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--role',
    options.role,
    '--log-level',
    'warn',
    ...(options.extra ?? []),
  ];
  const child = startChild(args);
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(`${url}/healthz`, child);
  return { child, url };
}
