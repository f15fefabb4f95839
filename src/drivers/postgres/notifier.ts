/**
 * The NOTIFY side of the PostgreSQL driver: announces committed changes to other processes.
 *
 * Why after the commit, from a separate statement, rather than `pg_notify` inside the writing
 * transaction: a transaction that notifies takes a cluster-wide lock at commit and keeps it
 * through its WAL flush, so every notifying commit in the cluster runs one at a time. Writes
 * (inserts, acks) commit plainly and so share WAL flushes; the announcement follows in its own
 * statement on a connection with `synchronous_commit = off`, which holds that lock only briefly.
 * Listeners therefore hear of a change only after it is committed, as before. The cost is that a
 * process dying between its commit and its announcement leaves the change unannounced: every
 * listener also polls (workers every `pollMs`, waiting requests every few seconds, cancel flags
 * at each heartbeat), so such a change is picked up late, never lost.
 *
 * Announcements coalesce: while one statement is in flight, the next batch gathers (queued counts
 * are summed, ids are concatenated), so a process sends about one NOTIFY statement per round trip
 * however fast it writes.
 */
import type { DriverEventName, DriverEvents } from '../driver.js';

/** The word after a tasksQueued count when some of the tasks were queued again (DriverEvents). */
const REQUEUED = 'requeued';

/** Ids per payload: keeps each one well under PostgreSQL's 8000-byte limit. */
const IDS_PER_PAYLOAD = 100;

export interface Notification {
  channel: string;
  payload: string;
}

export interface NotifierOptions {
  /** The NOTIFY channel of each event. */
  channels: Record<DriverEventName, string>;
  /** Names this process in every payload, so it can ignore its own announcements. */
  sender: string;
  /** Sends the notifications in one statement. */
  send: (notifications: Notification[]) => Promise<void>;
}

export class PgNotifier {
  private queuedCount = 0;
  private earliestRunAt = Infinity;
  private requeued = false;
  private changed: string[] = [];
  private cancelled: string[] = [];
  private sending: Promise<void> | null = null;
  private scheduled = false;

  constructor(private readonly options: NotifierOptions) {}

  announce<E extends DriverEventName>(event: E, payload: DriverEvents[E]): void {
    if ('count' in payload) {
      this.queuedCount += payload.count;
      this.earliestRunAt = Math.min(this.earliestRunAt, payload.earliestRunAt ?? Infinity);
      if (payload.requeued) this.requeued = true;
    } else if (event === 'tasksChanged') this.changed.push(...payload.ids);
    else this.cancelled.push(...payload.ids);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.sending) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.sending = this.sendPending().finally(() => {
        this.sending = null;
        if (this.hasPending()) this.schedule();
      });
    });
  }

  private hasPending(): boolean {
    return this.queuedCount > 0 || this.changed.length > 0 || this.cancelled.length > 0;
  }

  private async sendPending(): Promise<void> {
    const { channels, sender } = this.options;
    const out: Notification[] = [];
    if (this.queuedCount > 0) {
      // "<sender> <count> <earliest run_at or -> [requeued]"
      const earliest = Number.isFinite(this.earliestRunAt) ? String(this.earliestRunAt) : '-';
      const flag = this.requeued ? ` ${REQUEUED}` : '';
      out.push({
        channel: channels.tasksQueued,
        payload: `${sender} ${this.queuedCount} ${earliest}${flag}`,
      });
    }
    for (const [event, ids] of [
      ['tasksChanged', this.changed.splice(0)],
      ['cancelRequested', this.cancelled.splice(0)],
    ] as const) {
      for (let i = 0; i < ids.length; i += IDS_PER_PAYLOAD) {
        out.push({
          channel: channels[event],
          payload: `${sender} ${ids.slice(i, i + IDS_PER_PAYLOAD).join(',')}`,
        });
      }
    }
    this.queuedCount = 0;
    this.earliestRunAt = Infinity;
    this.requeued = false;
    if (out.length === 0) return;
    // A failed announcement is dropped: the listeners' polling covers it (see the top comment).
    await this.options.send(out).catch(() => undefined);
  }

  /** Resolves once everything announced so far has been sent (or has failed). */
  async flush(): Promise<void> {
    while (this.sending || this.scheduled || this.hasPending()) {
      if (this.sending) await this.sending;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

/** Parses a payload of `event`'s channel back into the event; null for this process's own or foreign text. */
export function parseNotification(
  event: DriverEventName,
  payload: string,
  ownSender: string,
): DriverEvents[DriverEventName] | null {
  const space = payload.indexOf(' ');
  if (space < 0 || payload.slice(0, space) === ownSender) return null;
  const body = payload.slice(space + 1);
  if (event === 'tasksQueued') {
    const [countText, earliestText, flag] = body.split(' ');
    const count = Number(countText);
    if (!Number.isFinite(count)) return null;
    const earliestRunAt = Number(earliestText);
    return {
      count,
      ...(Number.isFinite(earliestRunAt) && earliestText !== '' && { earliestRunAt }),
      ...(flag === REQUEUED && { requeued: true as const }),
    };
  }
  return { ids: body === '' ? [] : body.split(',') };
}
