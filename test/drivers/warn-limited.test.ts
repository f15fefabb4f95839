import { expect, it } from 'vitest';
import { LimitedWarn } from '../../src/drivers/postgres/warn-limited.js';

it('warns once per interval for each message, then says how many were left out', () => {
  const lines: [object, string][] = [];
  let t = 0;
  const warn = new LimitedWarn({ warn: (obj, msg) => lines.push([obj, msg]) }, 1000, () => t);
  const err = new Error('connect ECONNREFUSED');
  warn.warn(err, 'lost');
  warn.warn(err, 'lost');
  warn.warn(err, 'other', { retryInMs: 100 });
  t = 999;
  warn.warn(err, 'lost');
  t = 1000;
  warn.warn(err, 'lost');
  expect(lines).toEqual([
    [{ err }, 'lost'],
    [{ err, retryInMs: 100 }, 'other'],
    [{ err, suppressed: 2 }, 'lost'],
  ]);
});
