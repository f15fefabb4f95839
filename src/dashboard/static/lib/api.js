// The HTTP API: JSON calls and server-sent-event streams, both with the token the user typed.
// Streams are read with fetch, not EventSource, so the token goes in a header, never in a URL.

const TOKEN_KEY = 'taskq.token';
const RECONNECT_MS = 2000;

export class AuthError extends Error {}

/** An error answer of the API, with its HTTP status. */
export class ApiError extends Error {
  /** @param {string} message @param {number} status */
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** @type {(message: string) => void} */
let onUnauthorized = () => {};
/** Who asks for a token when the API answers 401 (the sign-in form). @param {(message: string) => void} fn */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  /** @param {string} value */
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** @returns {Record<string, string>} */
function authHeaders() {
  const value = token.get();
  return value ? { authorization: `Bearer ${value}` } : {};
}

function unauthorized() {
  onUnauthorized(token.get() ? 'That token was not accepted.' : '');
  return new AuthError('unauthorized');
}

/** @param {Response} res */
async function errorOf(res) {
  /** @type {unknown} */
  const body = await res.json().catch(() => null);
  const error = body && typeof body === 'object' && 'error' in body ? String(body.error) : '';
  return new ApiError(error || `${res.status} ${res.statusText}`, res.status);
}

/**
 * @template T the answer's type, which the route's response schema fixes on the server
 * @param {string} path
 * @param {RequestInit} [options]
 * @returns {Promise<T>}
 */
export async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...options.headers } });
  if (res.status === 401) throw unauthorized();
  if (!res.ok) throw await errorOf(res);
  // The server serialises every answer through its response schema, so the shape is T.
  return /** @type {Promise<T>} */ (res.json());
}

/**
 * @typedef {object} StreamHandlers
 * @property {(name: string, data: string) => void} event one server-sent event
 * @property {(on: boolean) => void} [live] connected, or dropped and about to reconnect
 * @property {(err: unknown) => void} [dropped] a network error (not our own abort)
 * @property {() => boolean} [again] the server ended the stream: reconnect? (default yes)
 * @property {(err: ApiError) => void} [refused] a 4xx answer; the stream stops
 */

/**
 * Follows a server-sent-event stream until the returned controller aborts, reconnecting after
 * drops and 5xx answers (2 s apart). Stops on 401 (the sign-in form shows) and on other 4xx.
 * @param {string} path
 * @param {StreamHandlers} on
 * @returns {AbortController}
 */
export function openStream(path, on) {
  const controller = new AbortController();
  const { signal } = controller;
  void (async () => {
    while (!signal.aborted) {
      try {
        const res = await fetch(path, { headers: authHeaders(), signal });
        if (res.status === 401) {
          unauthorized();
          return;
        }
        if (res.status >= 400 && res.status < 500) {
          on.refused?.(await errorOf(res));
          return;
        }
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        on.live?.(true);
        await readEvents(res.body, on.event);
        if (on.again && !on.again()) return;
      } catch (err) {
        if (!signal.aborted) on.dropped?.(err);
      }
      on.live?.(false);
      if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  })();
  return controller;
}

/**
 * @param {NonNullable<Response['body']>} body
 * @param {(name: string, data: string) => void} onEvent
 */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (data) onEvent(name, data);
    }
  }
}
