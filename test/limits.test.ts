/**
 * Per-process limits on connections (issue 10): the cap on open event streams, and the timeouts
 * that close idle and slow sockets. Each test waits on the socket's or the stream's own events;
 * the only timers are guards that fail a test whose event never comes.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/core/config.js';
import { http, startTestService, type TestService } from './support/service.js';
import { connectionClosed, responseClosed } from './support/signals.js';

let svc: TestService | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
});
const port = () => Number(new URL((svc as TestService).url).port);

/** Resolves with what the server sent once it closes the socket; fails after `guardMs`. */
function closed(socket: Socket, guardMs = 10_000): Promise<{ data: string; afterMs: number }> {
  const startedAt = Date.now();
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  socket.on('error', () => {}); // 'close' follows
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`socket still open after ${guardMs} ms`)), guardMs);
    socket.once('close', () => {
      clearTimeout(guard);
      resolve({ data, afterMs: Date.now() - startedAt });
    });
  });
}

async function openSocket(): Promise<Socket> {
  const socket = connect(port(), '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Opens an event stream and resolves once its first bytes arrived, i.e. the server holds a slot. */
async function openStream(path: string): Promise<AbortController> {
  const controller = new AbortController();
  const res = await fetch(`${(svc as TestService).url}${path}`, { signal: controller.signal });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  return controller;
}

describe('--max-event-streams', () => {
  it('answers 503 {error} past the cap, across both stream routes, and a closed stream frees its slot', async () => {
    // role api: no workers, so the task stays queued and its stream stays open.
    svc = await startTestService({ maxEventStreams: 2, role: 'api' });
    const firstClosed = responseClosed(svc.service.app.server, '/events/stats');
    const { body: task } = await http(`${svc.url}/tasks`, { method: 'POST', json: { action: 'sum' } });
    const first = await openStream('/events/stats');
    await openStream(`/tasks/${task.id}/events`);
    for (const path of ['/events/stats', `/tasks/${task.id}/events`]) {
      const refused = await http(`${svc.url}${path}`);
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({
        error: expect.stringMatching(/2 event streams are open/),
        code: 'TQ_ERR_UNAVAILABLE',
      });
    }
    // Other routes are not capped.
    expect((await http(`${svc.url}/stats`)).status).toBe(200);
    first.abort();
    // The slot frees when the server sees the connection close; that takes a moment, not a time.
    await firstClosed;
    await openStream('/events/stats');
  });
});

describe('socket timeouts', () => {
  it('closes an idle keep-alive socket after --keep-alive-timeout-ms', async () => {
    svc = await startTestService({ keepAliveTimeoutMs: 1000 });
    const socket = await openSocket();
    const done = closed(socket);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const { data, afterMs } = await done;
    expect(data).toMatch(/^HTTP\/1\.1 200 /);
    // Node advertises whole seconds (hence the 1 s minimum) and closes a margin after that.
    expect(data).toMatch(/keep-alive: timeout=1\r\n/i);
    expect(afterMs).toBeGreaterThanOrEqual(950);
  });

  it('answers 408 {error, code} and closes a socket that sends half its headers (slowloris), or nothing', async () => {
    svc = await startTestService({ headersTimeoutMs: 300, requestTimeoutMs: 1000 });
    const partial = await openSocket();
    const silent = await openSocket();
    const [halfDone, silentDone] = [closed(partial), closed(silent)];
    partial.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    for (const { data, afterMs } of [await halfDone, await silentDone]) {
      expect(data).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4))).toEqual({
        error: expect.any(String),
        code: 'TQ_ERR_REQUEST_TIMEOUT',
      });
      expect(afterMs).toBeGreaterThanOrEqual(250);
    }
    // The server itself is fine.
    expect((await http(`${svc.url}/healthz`)).status).toBe(200);
  });
});

describe('the timeouts and answers that take long', () => {
  it('cut neither a long-poll nor an event stream: they bound receiving the request, not answering it', async () => {
    svc = await startTestService({ headersTimeoutMs: 200, requestTimeoutMs: 300, role: 'api' });
    const url = svc.url;
    const { body: task } = await http(`${url}/tasks`, { method: 'POST', json: { action: 'sum' } });
    const stream = await fetch(`${url}/tasks/${task.id}/events`);
    const reader = (stream.body as ReadableStream<Uint8Array>)
      .pipeThrough(new TextDecoderStream())
      .getReader();
    const startedAt = Date.now();
    const polled = await http(`${url}/tasks/${task.id}?wait=1`);
    expect(polled.status).toBe(200);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(950);
    expect((await http(`${url}/tasks/${task.id}/cancel`, { method: 'POST' })).status).toBe(200);
    let text = '';
    while (!text.includes('"status":"cancelled"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended early: ${text}`);
      text += value;
    }
  });
});

describe('--max-connections', () => {
  it('closes connections past the cap as they arrive, and takes new ones once one closes', async () => {
    svc = await startTestService({ maxConnections: 2 });
    const heldClosed = connectionClosed(svc.service.app.server);
    const held = [await openSocket(), await openSocket()];
    // A request on each proves the server accepted both before the third arrives.
    for (const socket of held) {
      socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await once(socket, 'data');
    }
    const refused = await openSocket();
    const { data } = await closed(refused);
    expect(data).toBe('');
    held[0]?.destroy();
    // The count drops when the server sees the close: a moment, not a time.
    await heldClosed;
    expect((await http(`${svc.url}/healthz`)).status).toBe(200);
    held[1]?.destroy();
  });
});

describe('settings', () => {
  it('refuses a headers timeout above the request timeout, naming both', () => {
    expect(() => resolveConfig({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }, {})).toThrow(
      '--headers-timeout-ms (5000) must not exceed --request-timeout-ms (1000)',
    );
    expect(resolveConfig({ headersTimeoutMs: 5000, requestTimeoutMs: 0 }, {}).headersTimeoutMs).toBe(5000);
  });
});
