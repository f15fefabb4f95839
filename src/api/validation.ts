/**
 * Request validation. Bodies are checked strictly (no type coercion: "5" is not a number,
 * unknown fields are refused), while query strings and params, which are always text, are coerced.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { NO_NUL } from './schemas.js';

const common = { allErrors: false, useDefaults: true, removeAdditional: false, strict: false } as const;
const strictAjv = new Ajv.default({ ...common, coerceTypes: false });
const coercingAjv = new Ajv.default({ ...common, coerceTypes: true });
const bodyValidators = new WeakMap<object, ValidateFunction>();

/**
 * The validator of a body schema, compiled once per schema: POST /tasks and every item of
 * /tasks/batch share the one of CreateTaskBody.
 */
export function bodyValidator<T>(schema: object): ValidateFunction<T> {
  let validate = bodyValidators.get(schema);
  if (!validate) bodyValidators.set(schema, (validate = strictAjv.compile(schema)));
  return validate as ValidateFunction<T>;
}

export function validatorCompiler({
  schema,
  httpPart,
}: {
  schema: object;
  httpPart?: string;
}): ValidateFunction {
  return httpPart === 'body' ? bodyValidator(schema) : coercingAjv.compile(schema);
}

/** One validation error in words, e.g. `body/action must NOT have fewer than 1 characters`. */
export function describeValidation(where: string, issue: ErrorObject): string {
  const at = `${where}${issue.instancePath}`;
  switch (issue.keyword) {
    case 'additionalProperties':
      return `${at} has an unknown field "${String(issue.params.additionalProperty)}"`;
    case 'enum':
      return `${at} must be one of: ${(issue.params.allowedValues as string[]).join(', ')}`;
    case 'pattern':
      if (issue.params.pattern === NO_NUL) return `${at} must not contain NUL (\\u0000) characters`;
      return `${at} ${issue.message ?? 'is invalid'}`;
    case 'required':
      return `${at} is missing "${String(issue.params.missingProperty)}"`;
    default:
      return `${at} ${issue.message ?? 'is invalid'}`;
  }
}
