/**
 * `taskq run` and an OpenTelemetry SDK the user installs (docs/tracing.md): the standard OTEL_*
 * variables start `@opentelemetry/sdk-node` from the working directory's project, and shut it
 * down (flushing spans) on SIGTERM; asking for traces without the package is a one-line error.
 * The package here is a stand-in that records its calls: the real one would need an exporter.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tracesRequested } from '../src/cli/tracing.js';
import { runCli, startCli } from './support/process.js';
import { cleanupAfterEach, freshDir as freshDirFor } from './support/cleanup.js';

const defer = cleanupAfterEach();
const freshDir = () => freshDirFor(defer);

/** A project folder holding a stand-in sdk-node that appends its calls to `calls.log`. */
function projectWithFakeSdk(): string {
  const dir = freshDir();
  const pkg = join(dir, 'node_modules', '@opentelemetry', 'sdk-node');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(
    join(pkg, 'package.json'),
    JSON.stringify({ name: '@opentelemetry/sdk-node', main: 'index.js' }),
  );
  writeFileSync(
    join(pkg, 'index.js'),
    `const { appendFileSync } = require('node:fs');
     const log = (what) => appendFileSync(${JSON.stringify(join(dir, 'calls.log'))}, what + '\\n');
     exports.NodeSDK = class { start() { log('start'); } async shutdown() { log('shutdown'); } };`,
  );
  return dir;
}

describe('tracesRequested', () => {
  it.each([
    [{}, false],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }, false],
  ])('%j -> %s', (env, expected) => {
    expect(tracesRequested(env)).toBe(expected);
  });
});

describe('taskq run with OTEL_* set', () => {
  it('fails with one line when the SDK package is not installed', () => {
    const dir = freshDir();
    const { code, stderr } = runCli(
      ['run', '--db', join(dir, 'tasks.db'), '--port', '0'],
      { OTEL_TRACES_EXPORTER: 'otlp' },
      dir,
    );
    expect(code).toBe(2);
    expect(stderr.trim()).toMatch(
      /^taskq: OTEL_\* variables ask for traces, but @opentelemetry\/sdk-node is not installed/,
    );
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it("starts the project's sdk-node, says so, and shuts it down on SIGTERM", async () => {
    const dir = projectWithFakeSdk();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: '' };
    const svc = await startCli(['--db', join(dir, 'tasks.db')], env, dir);
    expect(svc.output()).toContain('tracing is on (@opentelemetry/sdk-node)');
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
    expect(readFileSync(join(dir, 'calls.log'), 'utf8')).toBe('start\nshutdown\n');
  });

  it('taskq enqueue sends TRACEPARENT from its environment; an untraced service stores it as sent', async () => {
    const dir = freshDir();
    const off = { OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_ENDPOINT: '' };
    const svc = await startCli(['--db', join(dir, 'tasks.db')], off, dir);
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const { code, stdout } = runCli(['enqueue', 'noop', '--url', svc.url], {
      ...off,
      TRACEPARENT: traceparent,
    });
    expect(code).toBe(0);
    const task = (await (await fetch(`${svc.url}/tasks/${stdout.trim()}`)).json()) as { traceparent: string };
    expect(task.traceparent).toBe(traceparent);
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
  });

  it('loads nothing when no variable asks for traces', async () => {
    const dir = projectWithFakeSdk();
    const svc = await startCli(
      ['--db', join(dir, 'tasks.db')],
      { OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_ENDPOINT: '' },
      dir,
    );
    expect(svc.output()).not.toContain('tracing is on');
    svc.child.kill('SIGTERM');
    expect(await svc.exited).toBe(0);
    expect(() => readFileSync(join(dir, 'calls.log'), 'utf8')).toThrow();
  });
});
