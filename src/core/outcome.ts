/**
 * How one run of a handler ended. The worker produces it, retries decide on it (retry.ts), and
 * metrics label it; it lives here because all three read it.
 */
import type { AbortKind } from './retry.js';
import type { JsonText } from './task.js';

/** The reason given to `AbortController.abort()`, so handlers can tell why (`ctx.signal.reason`). */
export class TaskAbort extends Error {
  constructor(
    readonly kind: AbortKind,
    message: string,
  ) {
    super(message);
    this.name = 'TaskAbort';
  }
}

export type Outcome =
  | { kind: 'completed'; result: JsonText }
  | { kind: 'failed'; error: string; permanent: boolean; stack?: string }
  | { kind: 'aborted'; abort: TaskAbort }
  /** The handler waits for its children (ctx.waitForChildren): blocked until they finish. */
  | { kind: 'waiting' };
