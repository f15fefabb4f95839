/**
 * OpenTelemetry SDK set-ups for the tracing scenario, registered in a drain child before its
 * pool starts: `off` registers nothing (taskq's spans are never made); `unsampled` is an SDK whose
 * sampler drops every trace (spans are made but record nothing); `recording` samples every trace
 * and hands each ended span to an exporter that counts and drops it, so the figure is taskq's
 * cost and the SDK's, not an exporter's network.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';

export const TRACING_MODES = ['off', 'unsampled', 'recording'] as const;
export type TracingMode = (typeof TRACING_MODES)[number];

/** Registers the mode's SDK globally; `spans()` tells how many spans were exported. */
export function registerTracing(mode: TracingMode): { spans: () => number } {
  let exported = 0;
  if (mode === 'off') return { spans: () => exported };
  const exporter: SpanExporter = {
    export(spans: ReadableSpan[], done) {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => undefined,
  };
  const provider = new BasicTracerProvider({
    sampler: mode === 'recording' ? new AlwaysOnSampler() : new AlwaysOffSampler(),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return { spans: () => exported };
}
