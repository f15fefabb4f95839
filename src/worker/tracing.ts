/**
 * The worker's spans (docs/tracing.md), made only when `activeTracer()` (queue/tracing.ts) found
 * an SDK: per attempt, `wait <action>` from when the task became claimable to its handler's
 * start, and `process <action>`, the handler's run, in whose context the handler runs. Both are
 * children of the context the task stored (the producer's enqueue span), or a new root.
 */
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { TaskRecord } from '../core/task.js';
import { ATTR, contextOfStored, messagingAttributes } from '../queue/tracing.js';
import type { Outcome } from './executor.js';

/** How an attempt ended, as its span says (`taskq.task.outcome`). */
export type AttemptOutcome =
  'completed' | 'waiting' | 'error' | 'timeout' | 'cancelled' | 'lease_lost' | 'shutdown';

export function attemptOutcomeOf(outcome: Outcome): AttemptOutcome {
  if (outcome.kind === 'completed' || outcome.kind === 'waiting') return outcome.kind;
  if (outcome.kind === 'failed') return 'error';
  return outcome.abort.kind === 'cancel' ? 'cancelled' : outcome.abort.kind;
}

/** Outcomes that are the handler's or the worker's failure; cancel and shutdown are not. */
const FAILED: ReadonlySet<AttemptOutcome> = new Set(['error', 'timeout', 'lease_lost']);

export class AttemptSpan {
  /** The context the handler runs in: its own spans are children of the attempt. */
  readonly context: Context;
  private readonly span: Span;

  constructor(tracer: Tracer, task: TaskRecord, owner: string) {
    const parent = contextOfStored(task);
    const attributes = messagingAttributes(task.action, 'process', 'process');
    attributes[ATTR.messageId] = task.id;
    attributes[ATTR.attempt] = task.attempts;
    attributes[ATTR.maxAttempts] = task.maxAttempts;
    attributes[ATTR.worker] = owner;
    // The wait ends now, as the handler starts; queue times are epoch ms from the task's row.
    const now = Date.now();
    const wait = tracer.startSpan(
      `wait ${task.action}`,
      { kind: SpanKind.INTERNAL, attributes, startTime: Math.min(task.runAt, now) },
      parent,
    );
    if (task.claimedAt !== null) wait.addEvent('claimed', Math.min(task.claimedAt, now));
    wait.end();
    this.span = tracer.startSpan(`process ${task.action}`, { kind: SpanKind.CONSUMER, attributes }, parent);
    this.context = trace.setSpan(parent, this.span);
  }

  /** Runs `fn` (the handler) in the attempt's context. */
  run<T>(fn: () => T): T {
    return context.with(this.context, fn);
  }

  /** Ends the attempt with its outcome; `willRetry` when a failure is retried. */
  end(outcome: Outcome, willRetry: boolean | undefined): void {
    const kind = attemptOutcomeOf(outcome);
    this.span.setAttribute(ATTR.outcome, kind);
    if (willRetry !== undefined) this.span.setAttribute(ATTR.willRetry, willRetry);
    if (FAILED.has(kind)) {
      const message =
        outcome.kind === 'failed' ? outcome.error : outcome.kind === 'aborted' ? outcome.abort.message : '';
      this.span.setAttribute(ATTR.errorType, kind);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    } else if (kind === 'completed') {
      this.span.setStatus({ code: SpanStatusCode.OK });
    }
    this.span.end();
  }
}
