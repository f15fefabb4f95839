/**
 * `--ack-delay-ms` (issue 9: the acks' batching window, a setting since 2026-12-03) reaches the
 * worker pool's completer, on both drivers: with a long window a finished task's result waits
 * unwritten until its batch is due, and a flush (as on stop) writes it; with none it is written
 * straight away.
 */
import { describe, expect, it } from 'vitest';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { appsOn, BOTH_SERVICE_DBS } from './support/drivers.js';
import { eventually } from './support/service.js';

const noop: HandlerDefinition = { action: 'noop', handle: () => ({ done: true }) };

describe.each(BOTH_SERVICE_DBS)('--ack-delay-ms on %s', (_name, database, skip) => {
  const startApp = appsOn(database);
  const start = (ackDelayMs: number) => startApp({ ackDelayMs }, [noop]);

  it.skipIf(skip)("holds a finished task's result until its batch is due; a flush writes it", async () => {
    const { http, service } = await start(10_000);
    const pool = service.pool;
    if (!pool) throw new Error('a node of role all has a worker pool');
    expect(pool.completer.delayMs).toBe(10_000);
    const finished = new Promise((resolve) => pool.once('taskFinished', resolve));
    const id = (await http('/tasks', { method: 'POST', json: { action: 'noop' } })).body.id as string;
    await finished;
    expect(pool.completer.pending).toBe(1);
    expect((await http(`/tasks/${id}`)).body.status).toBe('running');
    await pool.completer.flush();
    const task = (await http(`/tasks/${id}`)).body;
    expect(task.status).toBe('completed');
    expect(task.result).toEqual({ done: true });
  });

  it.skipIf(skip)('writes it without waiting at 0', async () => {
    const { http, service } = await start(0);
    expect(service.pool?.completer.delayMs).toBe(0);
    const written = new Promise((resolve) => service.pool?.once('resultsWritten', resolve));
    const id = (await http('/tasks', { method: 'POST', json: { action: 'noop' } })).body.id as string;
    await written;
    expect((await http(`/tasks/${id}`)).body.status).toBe('completed');
    await eventually(() => expect(service.pool?.completer.pending).toBe(0));
  });
});
