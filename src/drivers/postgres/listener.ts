/**
 * The LISTEN side of the PostgreSQL driver: one dedicated connection (outside the pool, since a
 * pooled connection is handed to other work between queries and would miss notifications).
 *
 * It listens only to the channels someone in this process subscribed to, and stops listening
 * when the last subscriber leaves: a worker-only node never receives (nor parses) the completion
 * announcements that only API nodes with waiting requests need.
 *
 * If the connection drops, it reconnects with exponential backoff (100 ms doubling to 5 s) and,
 * once listening again, calls `onReconnect`: notifications sent while it was away are lost, so
 * the driver tells workers to look for work instead. Each failure goes to `onError` (the driver
 * rate-limits the warnings), so an outage shows in the log rather than as silence.
 */
import pg from 'pg';
import { listenSql, unlistenSql } from './queries.js';

export interface ListenerOptions {
  clientConfig: pg.ClientConfig;
  onMessage: (channel: string, payload: string) => void;
  onReconnect: () => void;
  /** A lost connection or a failed reconnect; `fields` says when the next attempt is. */
  onError: (err: unknown, msg: string, fields?: { retryInMs: number }) => void;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

export class PgListener {
  private client: pg.Client | null = null;
  private closed = false;
  private connecting = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Subscribers per channel; the connection LISTENs to exactly the channels with one or more. */
  private readonly wanted = new Map<string, number>();
  /** LISTEN/UNLISTEN statements run one at a time, in order, on the one connection. */
  private pending: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ListenerOptions) {}

  /** Starts listening to `channel` (connecting on first use); the returned function stops it. */
  subscribe(channel: string): () => void {
    const count = this.wanted.get(channel) ?? 0;
    this.wanted.set(channel, count + 1);
    if (count === 0) {
      if (this.client) this.send(listenSql(channel));
      else void this.connect(false, BACKOFF_MIN_MS);
    }
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      const left = (this.wanted.get(channel) ?? 1) - 1;
      if (left > 0) return void this.wanted.set(channel, left);
      this.wanted.delete(channel);
      if (this.client) this.send(unlistenSql(channel));
    };
  }

  /** Queues a statement on the listening connection; a failure there is a dropped connection. */
  private send(sql: string): void {
    const client = this.client;
    if (!client) return;
    this.pending = this.pending
      .then(() => client.query(sql))
      .catch((err: unknown) => this.dropped(client, err));
  }

  private async connect(isReconnect: boolean, backoffMs: number): Promise<void> {
    if (this.closed || this.connecting || this.client) return;
    this.connecting = true;
    const client = new pg.Client(this.options.clientConfig);
    // Until connected, a failure is handled by the catch below; afterwards by `dropped`.
    client.on('error', (err) => this.dropped(client, err));
    client.on('end', () => this.dropped(client, new Error('the LISTEN connection ended')));
    try {
      await client.connect();
      client.on('notification', (msg) => {
        if (msg.payload !== undefined && this.wanted.has(msg.channel))
          this.options.onMessage(msg.channel, msg.payload);
      });
      for (const channel of this.wanted.keys()) await client.query(listenSql(channel));
      this.connecting = false;
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
      if (isReconnect) this.options.onReconnect();
    } catch (err) {
      this.connecting = false;
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      if (!this.closed) {
        this.options.onError(err, 'the LISTEN connection to PostgreSQL failed; retrying', {
          retryInMs: backoffMs,
        });
      }
      this.retryLater(isReconnect, Math.min(backoffMs * 2, BACKOFF_MAX_MS), backoffMs);
    }
  }

  private retryLater(isReconnect: boolean, nextBackoffMs: number, waitMs: number): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect(isReconnect, nextBackoffMs);
    }, waitMs);
  }

  private dropped(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    this.options.onError(err, 'the LISTEN connection to PostgreSQL was lost; reconnecting', {
      retryInMs: BACKOFF_MIN_MS,
    });
    client.removeAllListeners('end');
    client.end().catch(() => {});
    this.retryLater(true, BACKOFF_MIN_MS * 2, BACKOFF_MIN_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
    }
  }
}
