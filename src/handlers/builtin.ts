/** The actions of the original tutorial. */
import { PermanentFailure } from '../core/errors.js';
import type { HandlerDefinition } from './handler.js';

export const uppercase: HandlerDefinition = {
  action: 'uppercase',
  handle: (task) => {
    const text = task.data.text ?? '';
    if (typeof text !== 'string') throw new PermanentFailure('uppercase: data.text must be a string');
    return { output: text.toUpperCase() };
  },
};

export const sum: HandlerDefinition = {
  action: 'sum',
  handle: (task) => {
    const numbers = task.data.numbers ?? [];
    if (!Array.isArray(numbers)) throw new PermanentFailure('sum: data.numbers must be an array of numbers');
    let total = 0;
    numbers.forEach((n, i) => {
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        throw new PermanentFailure(`sum: data.numbers[${i}] is not a number (${JSON.stringify(n)})`);
      }
      total += n;
    });
    return { output: total };
  },
};

/** Any action without a handler, unless --strict-actions is on (as in the original). */
export const fallback: HandlerDefinition = {
  action: '*',
  handle: () => ({ output: 'processed' }),
};

export const BUILTIN_HANDLERS: readonly HandlerDefinition[] = [uppercase, sum];
