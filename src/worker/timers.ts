/** Timers the worker's services share: none of them keeps the process alive on its own. */
import { Signals, type EventMap } from './signals.js';

/** Calls `fn` every `ms` until the returned function is called. */
export function repeat(ms: number, fn: () => unknown): () => void {
  const timer = setInterval(() => void fn(), ms);
  timer.unref();
  return () => clearInterval(timer);
}

/** A repeating call that can be started and stopped again (the services' timers). */
export class Ticker {
  private cancel: (() => void) | null = null;

  constructor(
    private readonly ms: number,
    private readonly fn: () => unknown,
  ) {}

  start(): void {
    this.cancel ??= repeat(this.ms, this.fn);
  }

  stop(): void {
    this.cancel?.();
    this.cancel = null;
  }
}

/** A service that does one thing every `intervalMs` between `start()` and `stop()`, with signals. */
export abstract class PeriodicService<E extends EventMap<E>> extends Signals<E> {
  private readonly ticker: Ticker;

  constructor(intervalMs: number) {
    super();
    this.ticker = new Ticker(intervalMs, () => this.tick());
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
  }

  protected abstract tick(): Promise<unknown>;
}

export const delay = (ms: number): Promise<void> =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });
