/**
 * The one place where errors become HTTP responses: always `{error, code}` JSON. Client mistakes
 * get a 4xx naming what is wrong; only our own faults are 5xx, and those are logged.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { ERROR_CODES, QueueError, type ErrorCode } from '../core/errors.js';

interface ValidationIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

function describeValidation(context: string | undefined, issue: ValidationIssue): string {
  const where = `${context ?? 'request'}${issue.instancePath}`;
  switch (issue.keyword) {
    case 'additionalProperties':
      return `${where} has an unknown field "${String(issue.params.additionalProperty)}"`;
    case 'enum':
      return `${where} must be one of: ${(issue.params.allowedValues as string[]).join(', ')}`;
    case 'required':
      return `${where} is missing "${String(issue.params.missingProperty)}"`;
    default:
      return `${where} ${issue.message ?? 'is invalid'}`;
  }
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
  const fastifyError = err as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (fastifyError.validation && fastifyError.validation.length > 0) {
    const message = describeValidation(
      fastifyError.validationContext,
      fastifyError.validation[0] as ValidationIssue,
    );
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
  if (status && status >= 400 && status < 500)
    return { status, code: 'TQ_ERR_VALIDATION', message: err.message };
  return { status: 500, code: 'TQ_ERR_INTERNAL', message: 'internal error' };
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, code, message } = toHttpError(err);
    if (status >= 500) request.log.error({ err }, 'request failed');
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
