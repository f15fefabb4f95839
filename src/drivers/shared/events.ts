/**
 * Driver events, which both drivers owe alike: which write announces which event, and the
 * emitter that hands them to this process's subscribers once the write has committed (never
 * before: a subscriber that reads the task must find the change). The PostgreSQL driver also
 * sends them to other processes (postgres/notifier.ts); that part is its own.
 */
import { EventEmitter } from 'node:events';
import type { TaskStatus } from '../../core/task.js';
import type {
  CancelOutcome,
  DriverEventName,
  DriverEvents,
  Failure,
  InsertedTask,
  RetryOutcome,
  Unsubscribe,
} from '../driver.js';

/** One event with its payload, as a write decides it before the commit. */
export type PendingEvent = {
  [E in DriverEventName]: { event: E; payload: DriverEvents[E] };
}[DriverEventName];

/** The status a failure writes: a retry goes back to the queue, the others finish the task. */
export function statusAfterFailure(outcome: Failure['outcome']): TaskStatus {
  return outcome === 'retry' ? 'queued' : outcome;
}

/** The events of each kind of write, given what the write changed (nothing changed: no event). */
export const eventsOf = {
  /** An insert's newly queued tasks may be claimed (the earliest run_at among them is announced). */
  inserted: (results: readonly InsertedTask[]): PendingEvent[] => {
    const queued = results.filter((r) => r.inserted && !r.claimed && r.task.status === 'queued');
    const runAts = queued.map((r) => r.task.runAt);
    if (runAts.length === 0) return [];
    return [
      {
        event: 'tasksQueued',
        payload: { count: runAts.length, earliestRunAt: runAts.reduce((a, b) => Math.min(a, b)) },
      },
    ];
  },
  /**
   * Tasks queued again (or, on resume, left queued while claims passed them) may be claimed, and
   * may sort before tasks claimed since (see DriverEvents).
   */
  requeued: (count: number): PendingEvent[] =>
    count > 0 ? [{ event: 'tasksQueued', payload: { count, requeued: true } }] : [],
  /** Results written: waiting clients see the tasks finished. */
  completed: (ids: string[]): PendingEvent[] =>
    ids.length > 0 ? [{ event: 'tasksChanged', payload: { ids } }] : [],
  /**
   * Rows that left `running` (failures, rescues): re-queued ones may be claimed, and all of them
   * changed.
   */
  leftRunning: (rows: readonly { id: string; status: TaskStatus }[]): PendingEvent[] => {
    const count = rows.filter((r) => r.status === 'queued').length;
    return [...eventsOf.requeued(count), ...eventsOf.completed(rows.map((r) => r.id))];
  },
  /** Tasks given back unspent may be claimed again; nothing a client waits for changed. */
  released: (count: number): PendingEvent[] => eventsOf.requeued(count),
  cancel: (outcome: CancelOutcome, id: string): PendingEvent[] => {
    if (outcome === 'cancelled') return eventsOf.completed([id]);
    if (outcome === 'cancel_requested') return [{ event: 'cancelRequested', payload: { ids: [id] } }];
    return [];
  },
  retry: (outcome: RetryOutcome, id: string): PendingEvent[] =>
    outcome === 'requeued' ? [...eventsOf.requeued(1), ...eventsOf.completed([id])] : [],
  /** A bulk retry: the tasks are queued again and changed. */
  bulkRetried: (ids: string[]): PendingEvent[] => [
    ...eventsOf.requeued(ids.length),
    ...eventsOf.completed(ids),
  ],
  /** A bulk cancel: queued tasks finished, running ones asked to stop. */
  bulkCancelled: (cancelled: string[], requested: string[]): PendingEvent[] => [
    ...eventsOf.completed(cancelled),
    ...(requested.length > 0 ? [{ event: 'cancelRequested' as const, payload: { ids: requested } }] : []),
  ],
  /** Progress is a change a waiting client (the dashboard) shows. */
  progress: (id: string, written: boolean): PendingEvent[] => (written ? eventsOf.completed([id]) : []),
};

/** This process's subscribers to one driver's events. */
export class DriverEventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every waiting API request subscribes: there is no sensible limit to warn at.
    this.emitter.setMaxListeners(0);
  }

  /** Hands committed events to the subscribers, in order. */
  emit(events: readonly PendingEvent[]): void {
    for (const e of events) this.emitter.emit(e.event, e.payload);
  }

  on<E extends DriverEventName>(event: E, listener: (payload: DriverEvents[E]) => void): Unsubscribe {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  close(): void {
    this.emitter.removeAllListeners();
  }
}
