/**
 * The one place where errors become HTTP responses: always `{error, code}` JSON. Client mistakes
 * get a 4xx naming what is wrong; only our own faults are 5xx, and those are logged.
 */
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { describeValidation } from './validation.js';
import { ERROR_CODES, QueueError, type ErrorCode } from '../core/errors.js';

/** The first code of each status (TQ_ERR_VALIDATION for 400). */
const CODE_OF_STATUS = new Map<number, ErrorCode>();
for (const [code, status] of Object.entries(ERROR_CODES) as [ErrorCode, number][]) {
  if (!CODE_OF_STATUS.has(status)) CODE_OF_STATUS.set(status, code);
}

const FASTIFY_CODES: Record<string, [ErrorCode, string?]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ['TQ_ERR_VALIDATION', 'invalid JSON body'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['TQ_ERR_VALIDATION', 'the body is empty; send a JSON object'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['TQ_ERR_BODY_TOO_LARGE'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [
    'TQ_ERR_UNSUPPORTED_MEDIA_TYPE',
    'unsupported Content-Type; send application/json',
  ],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['TQ_ERR_VALIDATION', 'Content-Length does not match the body'],
};

export function toHttpError(err: FastifyError | QueueError | Error): {
  status: number;
  code: ErrorCode;
  message: string;
} {
  if (err instanceof QueueError) return { status: err.httpStatus, code: err.code, message: err.message };
  const fastifyError = err as FastifyError & { validation?: ErrorObject[]; validationContext?: string };
  const issue = fastifyError.validation?.[0];
  if (issue) {
    const message = describeValidation(fastifyError.validationContext ?? 'request', issue);
    return { status: 400, code: 'TQ_ERR_VALIDATION', message };
  }
  const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (known) {
    const [code, message] = known;
    return { status: ERROR_CODES[code], code, message: message ?? err.message };
  }
  if (err instanceof SyntaxError || (fastifyError.statusCode === 400 && /JSON/i.test(err.message))) {
    return { status: 400, code: 'TQ_ERR_VALIDATION', message: `invalid JSON body: ${err.message}` };
  }
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    // Another 4xx of Fastify's (say 404 for a method it does not route): the code of that status
    // when there is one, else a plain 400, so a code always means the same status.
    const code = CODE_OF_STATUS.get(status);
    return code
      ? { status, code, message: err.message }
      : { status: 400, code: 'TQ_ERR_VALIDATION', message: err.message };
  }
  return { status: 500, code: 'TQ_ERR_INTERNAL', message: 'internal error' };
}
/**
 * Errors Fastify's router raises before any route or hook (its `frameworkErrors` option): a URL
 * that is not valid percent-encoding, a path parameter over the router's length limit. Without
 * this they were answered with Fastify's own codes, outside docs/errors.md.
 */
export function frameworkErrors(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const error =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`
      : 'the URL is not valid percent-encoded UTF-8';
  void reply.code(400).send({ error, code: 'TQ_ERR_VALIDATION' });
}

/** Fastify's (default) limit on one path parameter, in characters. */
export const MAX_PARAM_LENGTH = 100;

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, code, message } = toHttpError(err);
    // 503 is "not now" (the database unreachable, its disk full or locked; shutting down): one line per
    // request, without the stack that a fault of taskq itself (500) is logged with.
    if (status === 503) request.log.warn({ code, reason: message }, 'request refused: unavailable');
    else if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ err: err.message }, 'client error');
    void reply.code(status).type('application/json').send({ error: message, code });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({
      error: `no route for ${request.method} ${request.url.split('?')[0]}`,
      code: 'TQ_ERR_NOT_FOUND',
    });
  });
}

/**
 * Node's HTTP parser errors and socket timeouts, before any route runs (Fastify's
 * clientErrorHandler): the same `{error, code}` JSON as every other error, then the socket closes.
 */
export function clientErrorHandler(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let code: ErrorCode = 'TQ_ERR_VALIDATION';
  let message = `malformed HTTP request: ${err.reason ?? err.message}`;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    code = 'TQ_ERR_REQUEST_TIMEOUT';
    message = 'the request headers or body did not arrive in time';
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    code = 'TQ_ERR_HEADERS_TOO_LARGE';
    message = 'the request line and headers are larger than the server accepts';
  }
  const status = ERROR_CODES[code];
  const body = JSON.stringify({ error: message, code });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * HTTP/1.1 requires a Host header. Node would refuse a request without one itself, with an empty
 * 400 body; the server is built with requireHostHeader off so that this check answers in JSON.
 */
export function installHostCheck(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw new QueueError('TQ_ERR_VALIDATION', 'an HTTP/1.1 request needs a Host header');
    }
  });
}
