/**
 * Waiting on typed signals (the worker services' events) instead of sleeping or polling: a test
 * says which event it waits for and what it must carry, and fails with the event's name when it
 * does not come in time.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { QueueDriver } from '../../src/drivers/driver.js';
import type { EventMap, Signals } from '../../src/worker/signals.js';

export interface Watch<A extends unknown[]> {
  /** Every event since the watch began, in order. */
  readonly seen: A[];
  /** The first event, seen already or still to come, that `match` accepts. */
  until(match?: (...args: A) => boolean, timeoutMs?: number): Promise<A>;
  /** The next event still to come that `match` accepts. */
  next(match?: (...args: A) => boolean, timeoutMs?: number): Promise<A>;
  off(): void;
}

const DEFAULT_TIMEOUT_MS = 5000;

/** Records `event` of `emitter` from now on. */
export function watch<E extends EventMap<E>, K extends keyof E & string>(
  emitter: Signals<E>,
  event: K,
): Watch<E[K]> {
  type A = E[K];
  const seen: A[] = [];
  const waiters = new Set<(args: A) => void>();
  const listener = (...args: A) => {
    seen.push(args);
    for (const waiter of [...waiters]) waiter(args);
  };
  // Node's EventEmitter types its listeners through conditional types a generic cannot resolve.
  type Subscribe = (event: K, listener: (...args: A) => void) => void;
  const on = emitter.on.bind(emitter) as unknown as Subscribe;
  const off = emitter.off.bind(emitter) as unknown as Subscribe;
  on(event, listener);
  const wait = (match: (...args: A) => boolean, timeoutMs: number) =>
    new Promise<A>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no matching "${event}" within ${timeoutMs} ms (${seen.length} seen)`));
      }, timeoutMs);
      const waiter = (args: A) => {
        if (!match(...args)) return;
        clearTimeout(timer);
        waiters.delete(waiter);
        resolve(args);
      };
      waiters.add(waiter);
    });
  return {
    seen,
    until(match = () => true, timeoutMs = DEFAULT_TIMEOUT_MS) {
      const found = seen.find((args) => match(...args));
      return found ? Promise.resolve(found) : wait(match, timeoutMs);
    },
    next(match = () => true, timeoutMs = DEFAULT_TIMEOUT_MS) {
      return wait(match, timeoutMs);
    },
    off: () => off(event, listener),
  };
}

/** The next `event` of `emitter` that `match` accepts. */
export function nextSignal<E extends EventMap<E>, K extends keyof E & string>(
  emitter: Signals<E>,
  event: K,
  match?: (...args: E[K]) => boolean,
  timeoutMs?: number,
): Promise<E[K]> {
  const w = watch(emitter, event);
  return w.next(match, timeoutMs).finally(() => w.off());
}

/**
 * A clock a test moves by hand: the pool tells the database this time (claims, leases, retry
 * times, rescue), so backoff and lease expiry are reached by `advance`, not by waiting.
 */
export function testClock(start = Date.now()): { now: () => number; advance: (ms: number) => number } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => (t += ms),
  };
}

/** A promise with its resolve exposed: lets a test hold a handler until it says go. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * Handlers held at a gate until the test opens it: `pass()` is a handler body that waits for its
 * turn; `entered(n)` resolves once `n` handlers have arrived; `open(i)` lets the i-th go.
 */
export class Gates {
  private readonly opens: (() => void)[] = [];
  private readonly arrivals = new Set<() => void>();

  get count(): number {
    return this.opens.length;
  }

  pass(): Promise<void> {
    const passed = new Promise<void>((resolve) => this.opens.push(resolve));
    for (const arrival of [...this.arrivals]) arrival();
    return passed;
  }

  entered(n: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if (this.opens.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.arrivals.delete(arrival);
        reject(new Error(`${this.opens.length} of ${n} handlers arrived within ${timeoutMs} ms`));
      }, timeoutMs);
      const arrival = () => {
        if (this.opens.length < n) return;
        clearTimeout(timer);
        this.arrivals.delete(arrival);
        resolve();
      };
      this.arrivals.add(arrival);
    });
  }

  open(i: number): void {
    const open = this.opens[i];
    if (!open) throw new Error(`handler ${i} has not arrived`);
    open();
  }

  openAll(): void {
    this.opens.forEach((open) => open());
  }
}

/**
 * Resolves once `peer` hears a `tasksQueued` from another driver, calling `poke` (which should
 * queue a task elsewhere) until it does: a PostgreSQL driver starts to LISTEN in the background
 * when first subscribed, and nothing announces when it has, so each poke waits for the event
 * for `waitMs` at most before trying again.
 */
export async function untilHeard(
  peer: QueueDriver,
  poke: () => Promise<unknown>,
  { tries = 50, waitMs = 100 } = {},
): Promise<void> {
  let heard = false;
  let wake = () => {};
  const off = peer.on('tasksQueued', () => {
    heard = true;
    wake();
  });
  try {
    for (let i = 0; i < tries && !heard; i++) {
      await poke();
      await new Promise<void>((resolve) => {
        if (heard) return resolve();
        const timer = setTimeout(resolve, waitMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    off();
  }
  if (!heard) throw new Error(`the peer heard no tasksQueued after ${tries} inserts`);
}

/** Subscribes `wake` to some event source; returns the unsubscribe. */
export type Subscribe = (wake: () => void) => () => void;

/** `event` of a worker service as a `Subscribe` for `checkedOn`. */
export function onSignal<E extends EventMap<E>, K extends keyof E & string>(
  emitter: Signals<E>,
  event: K,
): Subscribe {
  // As in `watch`: EventEmitter's conditional listener types do not resolve for a generic event.
  type Listen = (event: K, listener: () => void) => void;
  const on = emitter.on.bind(emitter) as unknown as Listen;
  const off = emitter.off.bind(emitter) as unknown as Listen;
  return (wake) => {
    on(event, wake);
    return () => off(event, wake);
  };
}

type Falsy = null | undefined | false | 0 | '';

/**
 * Resolves with `check()`'s first truthy value, trying it now and again after each event of
 * `subscribe`: for a state (a row count, a health flag) that changes only where an event says
 * something happened, which a test would otherwise poll for.
 */
export async function checkedOn<T>(
  subscribe: Subscribe,
  check: () => Promise<T> | T,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<Exclude<Awaited<T>, Falsy>> {
  let events = 0;
  let wake = () => {};
  const unsubscribe = subscribe(() => {
    events++;
    wake();
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const before = events;
      const value = await check();
      if (value) return value as Exclude<Awaited<T>, Falsy>;
      // An event during the check may have changed what it read: check again at once.
      if (events !== before) continue;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`condition not met within ${timeoutMs} ms (${events} events)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => {};
    }
  } finally {
    unsubscribe();
  }
}

/**
 * Resolves when `server` has seen a connection it accepted from now on close (its connection
 * count has dropped by then). Start it before the connections are made.
 */
export function connectionClosed(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const track = (socket: Socket) =>
      socket.once('close', () => {
        server.off('connection', track);
        resolve();
      });
    server.on('connection', track);
  });
}

/**
 * Resolves when a response of `server` to a request for `url` that answered `status` has closed
 * (ended, or the client went away; what listens for its close has heard it by then). Start it
 * before the request is made.
 */
export function responseClosed(server: Server, url: string, status = 200): Promise<void> {
  return new Promise((resolve) => {
    const track = (request: IncomingMessage, response: ServerResponse) => {
      if (request.url !== url) return;
      response.once('close', () => {
        if (response.statusCode !== status) return;
        server.off('request', track);
        resolve();
      });
    };
    server.on('request', track);
  });
}
