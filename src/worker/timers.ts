/** Timers the worker's services share: none of them keeps the process alive on its own. */

/** Calls `fn` every `ms` until the returned function is called. */
export function repeat(ms: number, fn: () => unknown): () => void {
  const timer = setInterval(() => void fn(), ms);
  timer.unref();
  return () => clearInterval(timer);
}

export const delay = (ms: number): Promise<void> =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });
