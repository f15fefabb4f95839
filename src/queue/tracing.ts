/**
 * OpenTelemetry: the trace context a task carries, and the producer's span (docs/tracing.md).
 *
 * Only `@opentelemetry/api` is used; an SDK is the user's choice. With none registered every
 * span would be the API's no-op, so callers ask `activeTracer()` first: it answers `undefined`
 * without allocating anything, and the untraced path does no tracing work at all.
 *
 * A task stores W3C `traceparent` / `tracestate` text. With tracing on it is the enqueue span's
 * context, so the worker's spans descend from it; with tracing off a valid header is passed
 * through unchanged (W3C Trace Context: a participant that does not trace still propagates), so a
 * worker that does trace continues the producer's trace.
 */
import {
  context,
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type ProxyTracerProvider,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { PACKAGE_VERSION } from '../core/version.js';

export const TRACER_NAME = 'taskq';

/** The W3C headers a producer sent (or the parts of them taskq keeps). */
export interface TraceHeaders {
  traceparent?: string;
  tracestate?: string;
}

/** What a task stores: both null when it continues no trace. */
export interface StoredTraceContext {
  traceparent: string | null;
  tracestate: string | null;
}

export const NO_TRACE: Readonly<StoredTraceContext> = Object.freeze({ traceparent: null, tracestate: null });

/**
 * taskq's tracer when an SDK is registered, else undefined. The global provider is the API's
 * proxy; asking it for its delegate's tracer is a property read when there is no delegate, where
 * `getTracer()` would hand out a proxy tracer and every span a no-op object.
 */
export function activeTracer(): Tracer | undefined {
  // Duck-typed, not instanceof: the SDK may have loaded another copy of the API package.
  const provider = trace.getTracerProvider() as Partial<Pick<ProxyTracerProvider, 'getDelegateTracer'>> &
    ReturnType<typeof trace.getTracerProvider>;
  if (typeof provider.getDelegateTracer === 'function')
    return provider.getDelegateTracer(TRACER_NAME, PACKAGE_VERSION);
  return provider.getTracer(TRACER_NAME, PACKAGE_VERSION);
}

// version-traceid-parentid-flags; a later version may append fields after another '-'.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
/** W3C allows 32 list members of up to 256 characters each; 512 covers what vendors send. */
const TRACESTATE_MAX = 512;

/** The span context of a W3C `traceparent`, or undefined when it is malformed (then it is ignored). */
export function parseTraceparent(traceparent: string, tracestate?: string): SpanContext | undefined {
  const match = TRACEPARENT.exec(traceparent);
  if (!match) return undefined;
  const [, version = '', traceId = '', spanId = '', flags = '', rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const spanContext: SpanContext = {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!isSpanContextValid(spanContext)) return undefined; // all-zero ids
  if (tracestate && tracestate.length <= TRACESTATE_MAX)
    spanContext.traceState = createTraceState(tracestate);
  return spanContext;
}

/** The W3C text of a span context, as a task stores it. */
export function storedContextOf(spanContext: SpanContext): StoredTraceContext {
  const flags = (spanContext.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  const tracestate = spanContext.traceState?.serialize() || null;
  return { traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`, tracestate };
}

/** A producer's headers as stored when this process does not trace: valid ones pass through. */
export function passThrough(headers: TraceHeaders | undefined): StoredTraceContext {
  if (headers?.traceparent === undefined) return NO_TRACE;
  const spanContext = parseTraceparent(headers.traceparent, headers.tracestate);
  return spanContext ? storedContextOf(spanContext) : NO_TRACE;
}

/** The context a stored trace context continues; the root context when there is none. */
export function contextOfStored(stored: StoredTraceContext): Context {
  const spanContext =
    stored.traceparent && parseTraceparent(stored.traceparent, stored.tracestate ?? undefined);
  return spanContext ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : ROOT_CONTEXT;
}

/**
 * The enqueue span's parent: the caller's active span if there is one (a library caller, or an
 * HTTP server span from the user's instrumentation), else the request's `traceparent`, else none
 * (a new root trace).
 */
function producerParent(headers: TraceHeaders | undefined): Context {
  const active = context.active();
  const activeSpan = trace.getSpanContext(active);
  if (activeSpan && isSpanContextValid(activeSpan)) return active;
  const remote =
    headers?.traceparent === undefined
      ? undefined
      : parseTraceparent(headers.traceparent, headers.tracestate);
  return remote ? trace.setSpanContext(active, remote) : active;
}

/** Semantic-convention names (messaging.*) and taskq's own (taskq.*), listed in docs/tracing.md. */
export const ATTR = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
  batchCount: 'messaging.batch.message_count',
  errorType: 'error.type',
  deduplicated: 'taskq.task.deduplicated',
  attempt: 'taskq.task.attempt',
  maxAttempts: 'taskq.task.max_attempts',
  outcome: 'taskq.task.outcome',
  willRetry: 'taskq.task.will_retry',
  worker: 'taskq.worker.id',
} as const;

/** The attributes every taskq span of `action` carries. */
export function messagingAttributes(
  action: string,
  operationType: string,
  operationName: string,
): Attributes {
  return {
    [ATTR.system]: 'taskq',
    [ATTR.operationType]: operationType,
    [ATTR.operationName]: operationName,
    [ATTR.destination]: action,
  };
}

/**
 * Runs `enqueue` inside a producer span `enqueue <action>`; `enqueue` gets the context its tasks
 * store (the span's) and returns the stored tasks, whose ids and replays become attributes.
 */
export async function tracedEnqueue<T extends { task: { id: string }; inserted: boolean }>(
  tracer: Tracer,
  actions: string[],
  headers: TraceHeaders | undefined,
  enqueue: (stored: StoredTraceContext) => Promise<T[]>,
): Promise<T[]> {
  const action = actions.length === 1 || new Set(actions).size === 1 ? (actions[0] ?? '') : '(batch)';
  const attributes = messagingAttributes(action, 'send', 'enqueue');
  if (actions.length !== 1) attributes[ATTR.batchCount] = actions.length;
  const span = tracer.startSpan(
    `enqueue ${action}`,
    { kind: SpanKind.PRODUCER, attributes },
    producerParent(headers),
  );
  try {
    const results = await enqueue(storedContextOf(span.spanContext()));
    const first = results[0];
    if (results.length === 1 && first) {
      span.setAttribute(ATTR.messageId, first.task.id);
      if (!first.inserted) span.setAttribute(ATTR.deduplicated, true);
    }
    return results;
  } catch (err) {
    endWithError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

function endWithError(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setAttribute(ATTR.errorType, (error as { code?: unknown }).code?.toString() ?? error.name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}
