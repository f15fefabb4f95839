/** The `taskq` command as a user runs it: help, migrate, bad settings, handlers, signals. */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICE_SETTINGS } from '../src/cli/options.js';
import { SETTINGS } from '../src/core/config.js';
import { MIGRATIONS } from '../src/drivers/sqlite/migrations.js';
import { TASKQ_BIN, runCli, startCli } from './support/process.js';
import { eventually, http } from './support/service.js';
import { cleanupAfterEach, freshDir as freshDirFor } from './support/cleanup.js';

const defer = cleanupAfterEach();
const freshDir = () => freshDirFor(defer);
const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;

describe('help', () => {
  it.each([[['--help']], [['run', '--help']], [['migrate', '--help']]])(
    'taskq %s prints usage and exits 0',
    (args) => {
      const { code, stdout } = runCli(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(/Usage: taskq/);
    },
  );

  it('documents every run setting with its env var', () => {
    const { stdout } = runCli(['run', '--help']);
    for (const text of [
      '--db',
      'TASKQ_DB',
      '--port',
      'PORT',
      '--concurrency',
      'TASKQ_CONCURRENCY',
      '--prefetch',
      '--handlers',
    ]) {
      expect(stdout).toContain(text);
    }
  });
  it('documents every setting of taskq run, and TASKQ_DEBUG', () => {
    const { stdout } = runCli(['run', '--help']);
    for (const key of SERVICE_SETTINGS) {
      expect(stdout).toContain(SETTINGS[key].flag);
      for (const env of SETTINGS[key].env) expect(stdout).toContain(env);
    }
    expect(runCli(['--help']).stdout).toContain('TASKQ_DEBUG=1');
  });
});

describe('taskq migrate', () => {
  it('applies migrations, says so, and is a no-op the second time', () => {
    const db = join(freshDir(), 'nested', 'folder', 'tasks.db');
    const first = runCli(['migrate', '--db', db]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('applied 0001_init');
    expect(existsSync(db)).toBe(true);
    const second = runCli(['migrate', '--db', db]);
    expect(second.code).toBe(0);
    const latest = MIGRATIONS[MIGRATIONS.length - 1]!;
    expect(first.stdout).toContain(`applied ${latest.name}`);
    expect(second.stdout).toContain(`up to date at version ${latest.version}`);
  });

  it('two migrations started at once apply each version once', async () => {
    const db = join(freshDir(), 'tasks.db');
    const run = () =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [TASKQ_BIN, 'migrate', '--db', db]);
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('exit', (code) => resolve(`${code}:${out}`));
      });
    const outputs = await Promise.all([run(), run(), run()]);
    expect(
      outputs.every((o) => o.startsWith('0:')),
      outputs.join('\n'),
    ).toBe(true);
    expect(outputs.filter((o) => o.includes('applied 0001_init'))).toHaveLength(1);
  });

  it('fails with one line and a non-zero exit on an unusable path', () => {
    const file = join(freshDir(), 'plain-file');
    writeFileSync(file, 'not a folder');
    const { code, stderr } = runCli(['migrate', '--db', join(file, 'tasks.db')]);
    expect(code).not.toBe(0);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^taskq: --db \(TASKQ_DB\): cannot create the folder/);
  });
});

describe('bad settings', () => {
  it.each([
    [['run', '--port', 'abc'], {}, /--port \(flag\): expected a whole number, got "abc"/],
    [['run', '--concurrency', '0'], {}, /--concurrency \(flag\): 0 is out of range 1..1000/],
    [['run'], { TASKQ_PREFETCH: '-1' }, /--prefetch \(TASKQ_PREFETCH\): -1 is out of range/],
    [['run'], { TASKQ_ROLE: 'boss' }, /--role \(TASKQ_ROLE\): "boss" is not one of all, api, worker/],
    [['run', '--log-level', 'loud'], {}, /--log-level \(flag\)/],
    [['run', '--handlers', '/nonexistent/handlers'], {}, /--handlers \(TASKQ_HANDLERS\): cannot read folder/],
  ])('taskq %s exits 2 with one line naming the setting', (args, env, message) => {
    const { code, stderr } = runCli(args as string[], {
      TASKQ_DB: join(freshDir(), 't.db'),
      ...(env as object),
    });
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });

  it('rejects a handler module without a handler', () => {
    const { code, stderr } = runCli(['run', '--handlers', join(FIXTURES, 'bad-handlers')], {
      TASKQ_DB: join(freshDir(), 't.db'),
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/broken.js: the default export must be a function or defineHandler/);
  });

  it('rejects an unknown option', () => {
    const { code, stderr } = runCli(['run', '--colour', 'red']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/unknown option '--colour'/);
  });
});

describe('taskq run', () => {
  it('loads TypeScript and JavaScript handlers, survives a stray rejection, and exits 0 on SIGTERM', async () => {
    const db = join(freshDir(), 'tasks.db');
    const svc = await startCli(['--db', db, '--handlers', join(FIXTURES, 'handlers'), '--log-level', 'info']);
    defer(() => svc.child.kill('SIGKILL'));
    const bad = await http(`${svc.url}/tasks`, { method: 'POST', json: { action: 'misbehave' } });
    const good = await http(`${svc.url}/tasks`, {
      method: 'POST',
      json: { action: 'double', data: { n: 21 } },
    });
    const result = (id: string) =>
      eventually(async () => {
        const r = await http(`${svc.url}/tasks/${id}`);
        return r.body.status === 'completed' ? r.body.result : null;
      });
    expect(await result(bad.body.id)).toEqual({ output: 'survived' });
    expect(await result(good.body.id)).toEqual({ output: 42 });
    expect((await http(`${svc.url}/healthz`)).status).toBe(200);
    expect(svc.output()).toMatch(/unhandled rejection \(ignored\)/);
    expect(svc.output()).toMatch(/"actions":\["double","misbehave"\]/);
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('exits 70 after a last log line when an exception goes uncaught, keeping what it accepted', async () => {
    const db = join(freshDir(), 'tasks.db');
    const svc = await startCli(['--db', db, '--handlers', join(FIXTURES, 'crash-handlers')]);
    defer(() => svc.child.kill('SIGKILL'));
    const accepted = await http(`${svc.url}/tasks`, { method: 'POST', json: { action: 'throw-later' } });
    expect(accepted.status).toBe(202);
    expect(await svc.exited).toBe(70);
    expect(svc.output()).toMatch(/"level":60.*thrown from a timer.*uncaught exception: exiting/);
    // The restarted service still has the task: finished before the crash (its ack is usually
    // out within the 250 ms), or run again by the fallback handler after it.
    const restarted = await startCli(['--db', db]);
    defer(() => restarted.child.kill('SIGKILL'));
    const task = await eventually(async () => {
      const r = await http(`${restarted.url}/tasks/${accepted.body.id}`);
      return r.body.status === 'completed' ? r.body : null;
    });
    expect(['returned before the throw', 'processed']).toContain(task.result.output);
  });
});
