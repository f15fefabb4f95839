/**
 * OpenTelemetry traces (docs/tracing.md) on both drivers, recorded by the SDK's in-memory
 * exporter: a POST's traceparent reaches the handler through the stored task, each attempt is a
 * span with its outcome, and with no SDK registered nothing is traced or stored.
 */
import { context, trace, SpanKind, SpanStatusCode, type SpanContext } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TaskqClient } from '../src/client/index.js';
import { resolveConfig } from '../src/core/config.js';
import type { TaskRecord } from '../src/core/task.js';
import type { HandlerDefinition } from '../src/handlers/handler.js';
import { TaskqNode } from '../src/service.js';
import { BOTH_DRIVERS } from './support/drivers.js';
import { watch } from './support/signals.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracingOn = () => trace.setGlobalTracerProvider(provider);

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  tracingOn();
});
afterAll(async () => {
  trace.disable();
  context.disable();
  await provider.shutdown();
});

/** The span context each handler run saw as active, by task id and attempt. */
const seenByHandler = new Map<string, SpanContext | undefined>();
/** `held` runs until its task is aborted (timeout, cancel); `traced` completes. */
const HANDLERS: HandlerDefinition[] = [
  {
    action: 'held',
    timeoutMs: 100,
    handle: (_task, ctx) =>
      new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
  },
  {
    action: 'traced',
    handle: (task) => {
      seenByHandler.set(`${task.id}#${task.attempt}`, trace.getActiveSpan()?.spanContext());
      if (task.attempt === 1 && task.data.failFirst === true) throw new Error('first attempt fails');
      return { ok: true };
    },
  },
];

const spans = (name: string, taskId?: string): ReadableSpan[] =>
  exporter
    .getFinishedSpans()
    .filter(
      (s) => s.name === name && (taskId === undefined || s.attributes['messaging.message.id'] === taskId),
    );
const only = (name: string, taskId?: string): ReadableSpan => {
  const found = spans(name, taskId);
  expect(found, name).toHaveLength(1);
  return found[0] as ReadableSpan;
};

describe.each(BOTH_DRIVERS)('tracing on %s', (_name, open, skip) => {
  let node: TaskqNode;
  let cleanup: () => Promise<void> | void;

  beforeEach(async () => {
    if (skip) return;
    const made = open();
    cleanup = made.cleanup;
    const config = resolveConfig(
      { logLevel: 'silent', db: 'unused.db', backoffMs: 0, backoffMaxMs: 0, pollMs: 10, maxAttempts: 3 },
      {},
    );
    node = await TaskqNode.create({
      config,
      logger: pino({ level: 'silent' }),
      handlers: HANDLERS,
      driver: made.driver,
    });
    await node.app.ready();
    node.startBackground();
    exporter.reset();
    seenByHandler.clear();
  });
  afterEach(async () => {
    if (skip) return;
    tracingOn();
    await node.stop();
    await cleanup();
  });

  /**
   * POSTs a task and resolves with its id and stored row once attempt `attempts` ends; with
   * `attempts` 2 the first attempt fails.
   */
  const finishes = () => watch(node.pool as NonNullable<TaskqNode['pool']>, 'taskFinished');
  const runTask = async (headers: Record<string, string>, attempts = 1) => {
    const finished = finishes();
    const response = await node.app.inject({
      method: 'POST',
      url: '/tasks',
      headers,
      payload: { action: 'traced', data: { failFirst: attempts > 1 } },
    });
    expect(response.statusCode).toBe(202);
    const { id } = response.json() as { id: string };
    await finished.until((task) => task.id === id && task.attempts === attempts);
    finished.off();
    return { id, task: (await node.driver.getTask({ id })) as TaskRecord };
  };

  it.skipIf(skip)(
    "continues the POST's trace: enqueue span, then wait and process spans under it",
    async () => {
      const { id, task } = await runTask({ traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
      const enqueue = only('enqueue traced', id);
      expect(enqueue.kind).toBe(SpanKind.PRODUCER);
      expect(enqueue.spanContext().traceId).toBe(TRACE_ID);
      expect(enqueue.parentSpanContext?.spanId).toBe(PARENT_ID);
      expect(enqueue.attributes).toMatchObject({
        'messaging.system': 'taskq',
        'messaging.operation.type': 'send',
        'messaging.destination.name': 'traced',
      });
      // The task stores the enqueue span's context, so the worker continues from it.
      expect(task.traceparent).toBe(`00-${TRACE_ID}-${enqueue.spanContext().spanId}-01`);
      expect(task.tracestate).toBe('vendor=abc');

      const processSpan = only('process traced', id);
      const wait = only('wait traced', id);
      for (const span of [processSpan, wait]) {
        expect(span.spanContext().traceId).toBe(TRACE_ID);
        expect(span.parentSpanContext?.spanId).toBe(enqueue.spanContext().spanId);
      }
      expect(processSpan.kind).toBe(SpanKind.CONSUMER);
      expect(processSpan.attributes).toMatchObject({
        'messaging.operation.type': 'process',
        'taskq.task.attempt': 1,
        'taskq.task.outcome': 'completed',
      });
      expect(processSpan.status.code).toBe(SpanStatusCode.OK);
      expect(wait.events.map((e) => e.name)).toEqual(['claimed']);
      // The handler ran inside the process span: its own spans would be children of it.
      expect(seenByHandler.get(`${id}#1`)?.spanId).toBe(processSpan.spanContext().spanId);
    },
  );

  it.skipIf(skip)(
    'a failing then succeeding task has an attempt span per attempt, with its outcome',
    async () => {
      const { id } = await runTask({ traceparent: TRACEPARENT }, 2);
      const attempts = spans('process traced', id).sort(
        (a, b) => Number(a.attributes['taskq.task.attempt']) - Number(b.attributes['taskq.task.attempt']),
      );
      expect(
        attempts.map((s) => [s.attributes['taskq.task.attempt'], s.attributes['taskq.task.outcome']]),
      ).toEqual([
        [1, 'error'],
        [2, 'completed'],
      ]);
      const [first, second] = attempts as [ReadableSpan, ReadableSpan];
      expect(first.status).toEqual({ code: SpanStatusCode.ERROR, message: 'first attempt fails' });
      expect(first.attributes['taskq.task.will_retry']).toBe(true);
      expect(second.status.code).toBe(SpanStatusCode.OK);
      const enqueueSpan = only('enqueue traced', id).spanContext().spanId;
      for (const span of attempts) {
        expect(span.spanContext().traceId).toBe(TRACE_ID);
        expect(span.parentSpanContext?.spanId).toBe(enqueueSpan);
      }
      expect(spans('wait traced', id)).toHaveLength(2);
    },
  );

  it.skipIf(skip)('a timed-out attempt and a cancelled one end with those outcomes', async () => {
    const finished = finishes();
    const started = watch(node.pool as NonNullable<TaskqNode['pool']>, 'taskStarted');
    const post = async (payload: object) =>
      ((await node.app.inject({ method: 'POST', url: '/tasks', payload })).json() as { id: string }).id;
    // One attempt only, so the timeout (100 ms of real time) ends the task.
    const timedOut = await post({ action: 'held', max_attempts: 1 });
    await finished.until((task) => task.id === timedOut);
    const cancelled = await post({ action: 'held' });
    await started.until((task) => task.id === cancelled);
    expect((await node.app.inject({ method: 'POST', url: `/tasks/${cancelled}/cancel` })).statusCode).toBe(
      202,
    );
    await finished.until((task) => task.id === cancelled);
    finished.off();
    started.off();

    const timeout = only('process held', timedOut);
    expect(timeout.attributes).toMatchObject({
      'taskq.task.outcome': 'timeout',
      'taskq.task.will_retry': false,
    });
    expect(timeout.status).toEqual({ code: SpanStatusCode.ERROR, message: 'timed out after 100 ms' });
    const cancel = only('process held', cancelled);
    expect(cancel.attributes['taskq.task.outcome']).toBe('cancelled');
    expect(cancel.status.code).toBe(SpanStatusCode.UNSET);
  });

  it.skipIf(skip)(
    'without a traceparent the enqueue span starts a new trace that the handler continues',
    async () => {
      const { id } = await runTask({});
      const enqueue = only('enqueue traced', id);
      expect(enqueue.parentSpanContext).toBeUndefined();
      expect(only('process traced', id).spanContext().traceId).toBe(enqueue.spanContext().traceId);
    },
  );

  it.skipIf(skip)('a malformed traceparent is ignored (W3C): 202 and a new root trace', async () => {
    for (const bad of [
      'not-a-traceparent',
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`, // all-zero trace id
      `ff-${TRACE_ID}-${PARENT_ID}-01`, // version ff is invalid
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`, // upper-case hex
      `${TRACEPARENT}-extra`, // version 00 has no more fields
    ]) {
      exporter.reset();
      const { id, task } = await runTask({ traceparent: bad });
      const enqueue = only('enqueue traced', id);
      expect(enqueue.parentSpanContext, bad).toBeUndefined();
      expect(enqueue.spanContext().traceId).not.toBe(TRACE_ID);
      expect(task.traceparent).toBe(`00-${enqueue.spanContext().traceId}-${enqueue.spanContext().spanId}-01`);
    }
  });

  it.skipIf(skip)('a batch is one enqueue span whose context every task of it continues', async () => {
    const finished = finishes();
    const response = await node.app.inject({
      method: 'POST',
      url: '/tasks/batch',
      headers: { traceparent: TRACEPARENT },
      payload: { tasks: [{ action: 'traced' }, { action: 'traced' }] },
    });
    expect(response.statusCode).toBe(202);
    const { ids } = response.json() as { ids: string[] };
    for (const id of ids) await finished.until((task) => task.id === id);
    finished.off();
    const enqueue = only('enqueue traced');
    expect(enqueue.attributes['messaging.batch.message_count']).toBe(2);
    expect(enqueue.spanContext().traceId).toBe(TRACE_ID);
    for (const id of ids)
      expect(only('process traced', id).parentSpanContext?.spanId).toBe(enqueue.spanContext().spanId);
  });

  it.skipIf(skip)("the client sends its caller's context from its traceContext hook", async () => {
    const finished = finishes();
    // The client's fetch, answered by the app through inject() (no socket).
    const viaInject: typeof fetch = async (input, init) => {
      const response = await node.app.inject({
        method: init?.method as 'POST',
        url: new URL(String(input)).pathname,
        headers: init?.headers as Record<string, string>,
        payload: init?.body as string,
      });
      return new Response(response.body, { status: response.statusCode });
    };
    const client = new TaskqClient({
      baseUrl: 'http://taskq.test',
      fetch: viaInject,
      traceContext: () => ({ traceparent: TRACEPARENT }),
    });
    const { id } = await client.enqueue('traced', {});
    await finished.until((task) => task.id === id);
    finished.off();
    const enqueue = only('enqueue traced', id);
    expect(enqueue.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(only('process traced', id).spanContext().traceId).toBe(TRACE_ID);
    const view = (await node.app.inject({ url: `/tasks/${id}` })).json() as { traceparent: string };
    expect(view.traceparent).toBe(`00-${TRACE_ID}-${enqueue.spanContext().spanId}-01`);
  });

  it.skipIf(skip)("a library caller's active span is the enqueue span's parent", async () => {
    const finished = finishes();
    const caller = provider.getTracer('test');
    const { id, callerSpan } = await caller.startActiveSpan('caller', async (span) => {
      const { task } = await node.queue.enqueue({ action: 'traced' });
      span.end();
      return { id: task.id, callerSpan: span.spanContext() };
    });
    await finished.until((task) => task.id === id);
    finished.off();
    const enqueue = only('enqueue traced', id);
    expect(enqueue.parentSpanContext?.spanId).toBe(callerSpan.spanId);
    expect(only('process traced', id).spanContext().traceId).toBe(callerSpan.traceId);
  });

  it.skipIf(skip)(
    'with no SDK registered nothing is traced; a valid traceparent is passed through as sent',
    async () => {
      trace.disable();
      const plain = await runTask({});
      expect(plain.task).toMatchObject({ traceparent: null, tracestate: null });
      const passed = await runTask({ traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
      expect(passed.task).toMatchObject({ traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
      const malformed = await runTask({ traceparent: 'garbage' });
      expect(malformed.task.traceparent).toBeNull();
      expect(seenByHandler.get(`${passed.id}#1`)).toBeUndefined();
      expect(exporter.getFinishedSpans()).toEqual([]);
    },
  );
});
