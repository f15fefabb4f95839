/** Timers the worker's services share: none of them keeps the process alive on its own. */

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

export const delay = (ms: number): Promise<void> =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });
