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
