/** The typed client and the producer commands against a real service. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TaskqClient,
  TaskqConflictError,
  TaskqNotFoundError,
  TaskqTimeoutError,
  TaskqValidationError,
} from '../src/client/index.js';
import { runCli } from './support/process.js';
import { startTestService, type TestService } from './support/service.js';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TASKQ_BIN } from './support/process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let svc: TestService;
let client: TaskqClient;
beforeAll(async () => {
  // A real port: the client is a fetch client, and the CLI runs in other processes.
  svc = await startTestService({}, [
    { action: 'slow', handle: () => new Promise((r) => setTimeout(() => r({ slept: true }), 300)) },
  ]);
  client = new TaskqClient({ baseUrl: `${svc.url}/` });
});
afterAll(async () => {
  await svc.stop();
});

/** Runs the CLI without blocking the event loop (the service under test lives in this process). */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TASKQ_BIN, ...args, '--url', svc.url]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('TaskqClient', () => {
  it('is importable by name through the package exports, with no Node-only imports', () => {
    const script = "import('taskq/client').then((m) => console.log(typeof m.TaskqClient))";
    const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: ROOT });
    expect(out.stdout.trim()).toBe('function');
    // The browser can load it too: the compiled module imports nothing.
    expect(readFileSync(join(ROOT, 'dist/client/index.js'), 'utf8')).not.toMatch(/^import /m);
  });

  it('enqueues, waits for the result and reads the task', async () => {
    const { id, status } = await client.enqueue('uppercase', { text: 'typed' });
    expect(status).toBe('queued');
    const done = await client.wait(id, { timeoutMs: 10_000 });
    expect(done.result).toEqual({ output: 'TYPED' });
    expect((await client.get(id)).status).toBe('completed');
  });

  it('enqueues a batch and lists through every page', async () => {
    const { ids } = await client.enqueueBatch(
      Array.from({ length: 7 }, (_, i) => ({ action: 'client-list', data: { i }, delayMs: 60_000 })),
    );
    const seen: string[] = [];
    for await (const task of client.list({ action: 'client-list', limit: 3 })) seen.push(task.id);
    expect(seen).toEqual([...ids].reverse());
  });

  it('sends a concurrency key, alone and in a batch, and the CLI does too', async () => {
    const { id } = await client.enqueue('sum', { numbers: [1] }, { concurrencyKey: 'tenant-c' });
    expect((await client.get(id)).concurrency_key).toBe('tenant-c');
    const { ids } = await client.enqueueBatch([{ action: 'sum', concurrencyKey: 'tenant-d' }]);
    expect((await client.get(ids[0] as string)).concurrency_key).toBe('tenant-d');
    const run = await cli(['enqueue', 'sum', '--concurrency-key', 'tenant-e']);
    expect(run.code).toBe(0);
    const cliId = /[0-9a-f]{8}-[0-9a-f-]{27}/.exec(run.stdout)?.[0] as string;
    expect((await client.get(cliId)).concurrency_key).toBe('tenant-e');
  });

  it('throws typed errors', async () => {
    await expect(client.get('00000000-0000-4000-8000-000000000000')).rejects.toBeInstanceOf(
      TaskqNotFoundError,
    );
    await expect(client.enqueue('')).rejects.toBeInstanceOf(TaskqValidationError);
    await client.enqueue('sum', {}, { idempotencyKey: 'client-k' });
    const conflict = await client
      .enqueue('sum', { numbers: [1] }, { idempotencyKey: 'client-k' })
      .catch((e) => e);
    expect(conflict).toBeInstanceOf(TaskqConflictError);
    expect(conflict.code).toBe('TQ_ERR_CONFLICT');
    expect(conflict.status).toBe(409);
  });

  it('times out waiting with the last state of the task', async () => {
    const { id } = await client.enqueue('sum', {}, { delayMs: 60_000 });
    const err = await client.wait(id, { timeoutMs: 200 }).catch((e) => e);
    expect(err).toBeInstanceOf(TaskqTimeoutError);
    expect(err.task.status).toBe('queued');
  });
});

describe('producer commands', () => {
  it('taskq enqueue prints the id; with --wait, the result', async () => {
    const plain = await cli(['enqueue', 'sum', '--data', '{"numbers":[2,3]}']);
    expect(plain.code).toBe(0);
    expect(plain.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    const waited = await cli(['enqueue', 'slow', '--wait']);
    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.stdout)).toEqual({ slept: true });
  });

  it('taskq enqueue --wait exits 1 when the task fails', async () => {
    const res = await cli(['enqueue', 'sum', '--data', '{"numbers":["x"]}', '--wait']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/failed: sum: data.numbers\[0\] is not a number/);
  });

  it('taskq tasks prints a table', async () => {
    await client.enqueue('table-test', {}, { delayMs: 60_000 });
    const res = await cli(['tasks', '--action', 'table-test']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^ID\s+ACTION\s+STATUS\s+ATTEMPTS\s+CREATED/);
    expect(res.stdout).toMatch(/table-test\s+queued\s+0/);
  });

  it('taskq stats prints counts by action and the last hour', async () => {
    const res = await cli(['stats']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /^ACTION\s+QUEUED\s+RUNNING\s+COMPLETED\s+FAILED\s+CANCELLED\s+BLOCKED\s+TOTAL/,
    );
    expect(res.stdout).toMatch(/\n\(all\)\s+\d+/);
    expect(res.stdout).toMatch(/last hour: \d+ completed, \d+ failed/);
  });

  it('says clearly when the service cannot be reached, or the input is bad', () => {
    const down = runCli(['tasks', '--url', 'http://127.0.0.1:65534']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^taskq: cannot reach http:\/\/127.0.0.1:65534: ECONNREFUSED/);
    const badJson = runCli(['enqueue', 'sum', '--data', '{oops']);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/--data: not valid JSON/);
  });
});
