/**
 * The JSON body parser: Fastify's own (empty bodies, bad JSON and __proto__ keys refused), after a
 * nesting-depth check.
 *
 * Why check the text before parsing rather than catch the RangeError: JSON.parse itself copes
 * with any depth, so the stack overflows later, wherever something recurses over the value (the
 * driver's JSON.stringify, a handler, the dashboard) and, for inserts, inside a batch shared with
 * other requests. No single catch site covers all of them, and how deep a value may go before
 * one overflows depends on the stack in use at that moment. One linear scan of the text,
 * before any value exists, gives the same 400 for the same body every time.
 */
import type { FastifyInstance } from 'fastify';
import { QueueError } from '../core/errors.js';

/** Deepest nesting of objects and arrays in a body; the body itself is level 1. */
export const JSON_MAX_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** True when `text` nests objects and arrays deeper than `max`; brackets inside strings do not count. */
export function nestedDeeperThan(text: string, max: number): boolean {
  // A value cannot be deeper than it has characters; most bodies end the check here.
  if (text.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return false;
}

export function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (nestedDeeperThan(text, JSON_MAX_DEPTH)) {
      const message = `the JSON body is nested more than ${JSON_MAX_DEPTH} levels deep`;
      done(new QueueError('TQ_ERR_VALIDATION', message), undefined);
      return;
    }
    void parse(request, text, done); // calls done itself; returns nothing
  });
}
