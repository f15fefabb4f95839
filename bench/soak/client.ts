/**
 * The soak's load: POST /tasks at a steady rate and GETs at another, open loop (a slow answer
 * does not slow the schedule, as with real producers), plus one dashboard event stream
 * (/events/stats) kept open. Everything it sees is counted per row; `takeRow()` hands the row's
 * counts over and starts the next.
 */
import { Agent, request as httpRequest } from 'node:http';
import { now, sleep } from '../lib/util.js';

/** More requests than this in flight and the due ones are skipped (counted) instead of piling up. */
const MAX_IN_FLIGHT = 256;
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * A bounded keep-alive pool, as a real producer or proxy has: with fetch's unbounded one, every
 * latency spike opened more sockets and the server's fd count followed the client, not taskq.
 * Requests beyond it wait in the pool, and their latency includes that wait.
 */
const agent = new Agent({ keepAlive: true, maxSockets: 32 });
/** Recent task ids that GET /tasks/:id picks from. */
const RECENT_IDS = 1000;
/** The filters GET /tasks pages cycle through. */
const LIST_QUERIES = [
  'status=completed',
  'status=failed&action=flaky',
  'status=queued',
  'action=sum',
  'action=uppercase&status=completed',
  '',
];

export interface RowCounts {
  postMs: number[];
  getMs: number[];
  posts: number;
  gets: number;
  /** Non-2xx answers and requests without one (network error, timeout), by status or error name. */
  errors: Record<string, number>;
  /** Due requests not sent because MAX_IN_FLIGHT were in flight. */
  skipped: number;
  sseEvents: number;
}

const emptyRow = (): RowCounts => ({
  postMs: [],
  getMs: [],
  posts: 0,
  gets: 0,
  errors: {},
  skipped: 0,
  sseEvents: 0,
});

/** What POST /tasks answers with, mixed so that a fifth of the tasks fail at least once. */
export function taskBody(i: number): string {
  switch (i % 10) {
    case 8:
      return JSON.stringify({ action: 'flaky', data: { fail: 1 }, max_attempts: 3 });
    case 9:
      return JSON.stringify({ action: 'flaky', data: { fail: 3 }, max_attempts: 3 });
    default:
      return i % 2 === 0
        ? JSON.stringify({ action: 'uppercase', data: { text: `soak ${i}` } })
        : JSON.stringify({ action: 'sum', data: { numbers: [i, 1, 2] } });
  }
}

export class SoakClient {
  private row = emptyRow();
  private inFlight = 0;
  private readonly recentIds: string[] = [];
  private postsDue = 0;
  private readsDue = 0;
  private startedAt = 0;
  private ticker: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly sseAbort = new AbortController();
  private sseDone: Promise<void> = Promise.resolve();
  /** 202s over the whole run: the tasks that must all be finished at the end. */
  accepted = 0;
  sseReconnects = 0;
  /** Over the whole run, for the progress lines. */
  readonly totals = { posts: 0, gets: 0, errors: 0 };

  constructor(
    private readonly url: string,
    private readonly rate: number,
    private readonly readRate: number,
  ) {}

  start(): void {
    this.startedAt = now();
    // 10 ms ticks: at 200/s two POSTs a tick, so the load is smooth rather than bursty.
    this.ticker = setInterval(() => this.tick(), 10);
    this.sseDone = this.stream();
  }

  /** The counts since the last call. */
  takeRow(): RowCounts {
    const row = this.row;
    this.row = emptyRow();
    return row;
  }

  /** GET `path` as one of the row's reads; the body, or undefined after an error (counted). */
  async get(path: string): Promise<string | undefined> {
    this.row.gets++;
    this.totals.gets++;
    return this.request('GET', path);
  }

  /** Stops sending, closes the stream and waits (bounded) for the requests still in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.ticker);
    this.sseAbort.abort();
    await this.sseDone;
    const end = now() + REQUEST_TIMEOUT_MS;
    while (this.inFlight > 0 && now() < end) await sleep(20);
  }

  private tick(): void {
    const elapsedS = (now() - this.startedAt) / 1000;
    while (this.postsDue < Math.floor(elapsedS * this.rate)) void this.post(this.postsDue++);
    while (this.readsDue < Math.floor(elapsedS * this.readRate)) void this.read(this.readsDue++);
  }

  private async post(i: number): Promise<void> {
    this.row.posts++;
    this.totals.posts++;
    const text = await this.request('POST', '/tasks', taskBody(i));
    if (text === undefined) return;
    this.accepted++;
    const { id } = JSON.parse(text) as { id: string };
    if (this.recentIds.length < RECENT_IDS) this.recentIds.push(id);
    else this.recentIds[i % RECENT_IDS] = id;
  }

  private async read(i: number): Promise<void> {
    const kind = i % 10;
    const id = this.recentIds[Math.floor(Math.random() * this.recentIds.length)];
    if (kind < 5 && id !== undefined) {
      await this.get(`/tasks/${id}`);
    } else if (kind < 9) {
      const query = `${LIST_QUERIES[i % LIST_QUERIES.length] ?? ''}&limit=20`;
      const text = await this.get(`/tasks?${query}`);
      // Every other page read goes on to the next page, as a user paging through would.
      const next =
        text === undefined ? null : (JSON.parse(text) as { next_cursor: string | null }).next_cursor;
      if (next !== null && i % 2 === 0) await this.get(`/tasks?${query}&cursor=${encodeURIComponent(next)}`);
    } else {
      await this.get('/stats');
    }
  }

  private async request(method: 'GET' | 'POST', path: string, body?: string): Promise<string | undefined> {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.row.skipped++;
      return undefined;
    }
    this.inFlight++;
    const t0 = now();
    try {
      const { status, text } = await send(new URL(path, this.url), method, body);
      (method === 'POST' ? this.row.postMs : this.row.getMs).push(now() - t0);
      if (status >= 200 && status < 300) return text;
      this.countError(String(status));
    } catch (err) {
      this.countError((err as NodeJS.ErrnoException).code ?? (err as Error).name);
    } finally {
      this.inFlight--;
    }
    return undefined;
  }

  private countError(kind: string): void {
    this.row.errors[kind] = (this.row.errors[kind] ?? 0) + 1;
    this.totals.errors++;
  }

  /** The dashboard's live stream, reopened (and counted as an error) should it ever end. */
  private async stream(): Promise<void> {
    while (!this.stopping) {
      try {
        const res = await fetch(`${this.url}/events/stats`, { signal: this.sseAbort.signal });
        if (!res.ok || !res.body) throw new Error(`/events/stats answered ${res.status}`);
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk, { stream: true });
          // Events end with a blank line; keepalive comments (": ...") are not events.
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            if (buffer.startsWith('event: stats')) this.row.sseEvents++;
            buffer = buffer.slice(end + 2);
          }
        }
      } catch {
        // Aborted by stop(), or the stream failed: the check below tells which.
      }
      if (this.stopping) return;
      this.sseReconnects++;
      this.countError('sse closed');
      await sleep(1000);
    }
  }
}

/** One request through the pool; the whole of it (pool wait included) is bounded in time. */
function send(url: URL, method: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json' };
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const req = httpRequest(url, { method, agent, headers, signal }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
