/**
 * Errors with a stable code and the HTTP status they map to. docs/errors.md lists every code;
 * test/docs.test.ts keeps the two in step. api/error-handler.ts is the only place that turns
 * them into responses.
 */
export const ERROR_CODES = {
  TQ_ERR_VALIDATION: 400,
  TQ_ERR_UNKNOWN_ACTION: 400,
  TQ_ERR_UNAUTHORIZED: 401,
  TQ_ERR_FORBIDDEN: 403,
  TQ_ERR_NOT_FOUND: 404,
  TQ_ERR_REQUEST_TIMEOUT: 408,
  TQ_ERR_CONFLICT: 409,
  TQ_ERR_BODY_TOO_LARGE: 413,
  TQ_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  TQ_ERR_HEADERS_TOO_LARGE: 431,
  TQ_ERR_UNAVAILABLE: 503,
  TQ_ERR_INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class QueueError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QueueError';
    this.code = code;
    this.httpStatus = ERROR_CODES[code];
  }
}

/** A bad setting: the CLI prints the message on one line and exits 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Turns anything thrown into an Error, so catch sites can rely on `.message`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`non-error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`non-error thrown: ${String(thrown)}`);
  }
}

/**
 * Handler control flow. Any other thrown value is a nack and the task is retried.
 * `PermanentFailure` ends the task `failed` at once, whatever attempts remain.
 */
export class PermanentFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentFailure';
  }
}

/**
 * Handler control flow: thrown by `ctx.waitForChildren()`. The attempt ends without a result and
 * the task is `blocked` until its children finish; then its handler runs again (resumed) and
 * `ctx.children()` has their results (docs/workflows.md). It is not a failure and uses no attempt.
 */
export class WaitForChildren extends Error {
  constructor() {
    super('waiting for children');
    this.name = 'WaitForChildren';
  }
}
