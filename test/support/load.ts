/** Posting many tasks through the HTTP API, as batches and single POSTs, with bounded concurrency. */
import { http } from './service.js';

export interface PostLoadOptions {
  /** Tasks to post in all; task i gets `data: { n: i }`. */
  total: number;
  action: string;
  /** Tasks per POST /tasks/batch. */
  batchSize: number;
  /** How many of the tasks go one by one through POST /tasks (the rest go in batches). */
  singles: number;
  /** Requests in flight at once. */
  concurrency: number;
}

/**
 * Posts the tasks and resolves with every accepted one (id -> n). A request that is not answered
 * 202 fails the whole load: these tests post to a healthy API and expect every task accepted.
 * `accepted` can be watched while the load runs.
 */
export function postLoad(
  base: string,
  options: PostLoadOptions,
): { accepted: Map<string, number>; done: Promise<Map<string, number>> } {
  const { total, action, batchSize, singles, concurrency } = options;
  const accepted = new Map<string, number>();
  // Requests as ranges of n: batches, with the singles spread evenly among them.
  type Request = { from: number; to: number; single: boolean };
  const batched = total - singles;
  const requests: Request[] = [];
  let single = 0;
  const batchCount = Math.ceil(batched / batchSize);
  for (let b = 0; b < batchCount; b++) {
    requests.push({ from: b * batchSize, to: Math.min((b + 1) * batchSize, batched), single: false });
    for (; single < singles && single < ((b + 1) * singles) / batchCount; single++) {
      requests.push({ from: batched + single, to: batched + single + 1, single: true });
    }
  }
  for (; single < singles; single++) {
    requests.push({ from: batched + single, to: batched + single + 1, single: true });
  }
  let next = 0;
  const client = async () => {
    while (next < requests.length) {
      const { from, to, single: isSingle } = requests[next++] as Request;
      if (isSingle) {
        const res = await http(`${base}/tasks`, { method: 'POST', json: { action, data: { n: from } } });
        if (res.status !== 202)
          throw new Error(`POST /tasks answered ${res.status}: ${JSON.stringify(res.body)}`);
        accepted.set(res.body.id, from);
      } else {
        const tasks = Array.from({ length: to - from }, (_, i) => ({ action, data: { n: from + i } }));
        const res = await http(`${base}/tasks/batch`, { method: 'POST', json: { tasks } });
        if (res.status !== 202) {
          throw new Error(`POST /tasks/batch answered ${res.status}: ${JSON.stringify(res.body)}`);
        }
        (res.body.ids as string[]).forEach((id, i) => accepted.set(id, from + i));
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, client)).then(() => accepted);
  return { accepted, done };
}

export interface SteadyLoadOptions {
  action: string;
  /** Clients posting at once; each alternates a single POST /tasks and a POST /tasks/batch. */
  clients: number;
  batchSize: number;
  /** Each client waits this long after an answer before its next request (sets the rate, not a wait for anything). */
  paceMs: number;
  /** Single POSTs carry a unique_key of their own (the insert then runs in a transaction). */
  uniqueKeys?: boolean;
}

/** What a steady load saw that a client must never see from the API. */
export interface LoadViolation {
  request: string;
  /** The status, or the network error when there was no HTTP answer. */
  answer: string;
}

export interface SteadyLoad {
  /** Every task answered 202: id -> n. */
  accepted: Map<string, number>;
  /** Answers by status. */
  statuses: Map<number, number>;
  /** Anything other than 202, or 503 with `{error}`. */
  violations: LoadViolation[];
  /** Resolves once `check` holds after some answer (checked after every one), or rejects at the deadline. */
  until: (check: () => boolean, timeoutMs?: number) => Promise<void>;
  /** Stops posting; resolves once every client has had its last answer. */
  stop: () => Promise<void>;
}

/**
 * Posts tasks until stopped, whatever the API answers: for fault tests, where the service may
 * answer 503 while its database is gone. Every answer is counted; only 202 (accepted) and 503
 * with an `{error}` body are answers a client may get, the rest are violations.
 */
export function steadyLoad(base: string, options: SteadyLoadOptions): SteadyLoad {
  const { action, clients, batchSize, paceMs } = options;
  const accepted = new Map<string, number>();
  const statuses = new Map<number, number>();
  const violations: LoadViolation[] = [];
  const waiters = new Set<() => void>();
  let next = 0;
  let stopped = false;
  const answered = () => waiters.forEach((w) => w());
  const post = async (single: boolean) => {
    const from = next;
    const count = single ? 1 : batchSize;
    next += count;
    const request = single ? 'POST /tasks' : 'POST /tasks/batch';
    const json = single
      ? { action, data: { n: from }, ...(options.uniqueKeys ? { unique_key: `load-${from}` } : {}) }
      : { tasks: Array.from({ length: count }, (_, i) => ({ action, data: { n: from + i } })) };
    try {
      const res = await http(`${base}${single ? '/tasks' : '/tasks/batch'}`, { method: 'POST', json });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 202) {
        if (single) accepted.set(res.body.id, from);
        else (res.body.ids as string[]).forEach((id, i) => accepted.set(id, from + i));
      } else if (res.status !== 503 || typeof res.body?.error !== 'string') {
        violations.push({ request, answer: `${res.status} ${JSON.stringify(res.body)}` });
      }
    } catch (err) {
      violations.push({ request, answer: `no answer: ${(err as Error).cause ?? (err as Error).message}` });
    }
    answered();
  };
  const client = async (c: number) => {
    for (let i = c; !stopped; i++) {
      await post(i % 2 === 0);
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, paceMs));
    }
  };
  const running = Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  return {
    accepted,
    statuses,
    violations,
    until: (check, timeoutMs = 20_000) =>
      new Promise<void>((resolve, reject) => {
        if (check()) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`load: condition not met within ${timeoutMs} ms (${accepted.size} accepted)`));
        }, timeoutMs);
        const waiter = () => {
          if (!check()) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve();
        };
        waiters.add(waiter);
      }),
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}
