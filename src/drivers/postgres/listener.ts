/**
 * The LISTEN side of the PostgreSQL driver: one dedicated connection (outside the pool, since a
 * pooled connection is handed to other work between queries and would miss notifications).
 * If that connection drops, it reconnects with exponential backoff (100 ms doubling to 5 s) and,
 * once listening again, calls `onReconnect`: notifications sent while it was away are lost, so
 * the driver tells workers to look for work instead.
 */
import pg from 'pg';

export interface ListenerOptions {
  clientConfig: pg.ClientConfig;
  channel: string;
  onMessage: (payload: string) => void;
  onReconnect: () => void;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

export class PgListener {
  private client: pg.Client | null = null;
  private closed = false;
  private connecting = false;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: ListenerOptions) {}

  start(): void {
    void this.connect(false, BACKOFF_MIN_MS);
  }

  private async connect(isReconnect: boolean, backoffMs: number): Promise<void> {
    if (this.closed || this.connecting || this.client) return;
    this.connecting = true;
    const client = new pg.Client(this.options.clientConfig);
    // Until connected, a failure is handled by the catch below; afterwards by `dropped`.
    client.on('error', () => this.dropped(client));
    client.on('end', () => this.dropped(client));
    try {
      await client.connect();
      // The channel is the driver's own name (prefix + a checked schema identifier), quoted.
      await client.query(`LISTEN "${this.options.channel}"`);
      client.on('notification', (msg) => {
        if (msg.channel === this.options.channel && msg.payload) this.options.onMessage(msg.payload);
      });
      this.connecting = false;
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
      if (isReconnect) this.options.onReconnect();
    } catch {
      this.connecting = false;
      client.removeAllListeners('end');
      await client.end().catch(() => {});
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

  private dropped(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
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
