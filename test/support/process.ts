/** Spawning the real `taskq` command (the built dist) as a child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const TASKQ_BIN = fileURLToPath(new URL('../../bin/taskq.js', import.meta.url));

export function runCli(args: string[], env: Record<string, string> = {}, cwd?: string) {
  const result = spawnSync(process.execPath, [TASKQ_BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** runCli without blocking the event loop: for a CLI that talks to a service in this process. */
export function runCliAsync(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TASKQ_BIN, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface RunningService {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `taskq run` on an ephemeral port and resolves once it logs its address. */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<RunningService> {
  const child = spawn(process.execPath, [TASKQ_BIN, 'run', '--port', '0', '--host', '127.0.0.1', ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // nobody gets a handle on it: do not leave it running
      reject(new Error(`taskq did not start:\n${output}`));
    }, 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"address":"(http:\/\/[^"]+)"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1] as string, output: () => output, exited });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`taskq exited with ${code} before starting:\n${output}`));
    });
  });
}

/**
 * Resolves with the first line of the service's output, from now on, that `pattern` matches;
 * rejects if none comes within `timeoutMs` or the process exits first.
 */
export function nextOutputLine(svc: RunningService, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let partial = '';
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      const line = lines.find((l) => pattern.test(l));
      if (line !== undefined) finish(() => resolve(line));
    };
    const onExit = () => finish(() => reject(new Error(`exited before printing ${pattern}`)));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      svc.child.stdout?.off('data', onData);
      svc.child.stderr?.off('data', onData);
      svc.child.off('exit', onExit);
      settle();
    };
    svc.child.stdout?.on('data', onData);
    svc.child.stderr?.on('data', onData);
    svc.child.once('exit', onExit);
  });
}

/** Starts any `taskq` command (`migrate`, ...) without waiting for it; `exited` gives its code and signal. */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [TASKQ_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => output };
}

/**
 * Children a test file starts: `start` as startCli, `killAll` (after each case) kills what is
 * still running with SIGKILL and waits for it to exit.
 */
export function childProcesses() {
  let running: RunningService[] = [];
  return {
    async start(args: string[], env: Record<string, string> = {}): Promise<RunningService> {
      const node = await startCli(args, env);
      running.push(node);
      return node;
    },
    async killAll(): Promise<void> {
      for (const node of running) node.child.kill('SIGKILL');
      await Promise.all(running.map((node) => node.exited));
      running = [];
    },
  };
}
