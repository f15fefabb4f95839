/** Handler modules' options are checked when the folder is loaded, with one line naming the file. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/core/errors.js';
import { parseHandlerOptions } from '../src/handlers/handler.js';
import { HandlerRegistry, loadHandlersFolder } from '../src/handlers/registry.js';
import { runCli } from './support/process.js';
import { tempDir } from './support/temp.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const fn of cleanups.splice(0)) fn();
});

/** A handlers folder holding one module, `name`, whose default export is `options`. */
function folderWith(name: string, options: string): { dir: string; file: string } {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const dir = join(t.dir, 'handlers');
  mkdirSync(dir);
  const file = join(dir, name);
  writeFileSync(file, `export default { handle: () => 1, ${options} };\n`);
  return { dir, file };
}

const handle = () => null;

describe('parseHandlerOptions', () => {
  it('keeps valid options', () => {
    const options = parseHandlerOptions('h', {
      handle,
      action: 'resize',
      timeoutMs: 5000,
      maxAttempts: 5,
      concurrency: 2,
      backoff: { baseMs: 100, maxMs: 1000 },
    });
    expect(options).toMatchObject({ action: 'resize', timeoutMs: 5000, concurrency: 2 });
    expect(options.backoff).toEqual({ baseMs: 100, maxMs: 1000 });
  });

  it('keeps flow-control options, filling in the burst', () => {
    const options = parseHandlerOptions('h', { handle, rateLimit: { perSecond: 0.5 }, concurrencyPerKey: 3 });
    expect(options.rateLimit).toEqual({ perSecond: 0.5, burst: 1 });
    expect(options.concurrencyPerKey).toBe(3);
  });

  it.each([
    [{ handle, concurrency: 0 }, 'h: concurrency: 0 is out of range 1..1000'],
    [{ handle, timeoutMs: '5000' }, 'h: timeoutMs: expected a number, got string "5000"'],
    [{ handle, maxAttempts: 1.5 }, 'h: maxAttempts: expected a whole number, got "1.5"'],
    [{ handle, backoff: { baseMs: 10 } }, 'h: backoff.maxMs is missing'],
    [{ handle, backoff: 5 }, 'h: backoff: expected { baseMs, maxMs }, got number 5'],
    [{ handle, action: 7 }, 'h: action: expected a string, got number 7'],
    [{ handle, timeout: 5000 }, 'h: unknown option "timeout" (did you mean "timeoutMs"?)'],
    [{ handle, backoff: { base: 1, maxMs: 2 } }, 'h: backoff: unknown option "base"'],
    [{ concurrency: 1 }, 'h: the default export must be a function or defineHandler({ handle })'],
    [{ handle, rateLimit: 5 }, 'h: rateLimit: expected { perSecond, burst? }, got number 5'],
    [
      { handle, rateLimit: { perSecond: 0 } },
      'h: rateLimit: perSecond must be a number above 0 and at most 1000000',
    ],
    [
      { handle, rateLimit: { perSecond: 1, burst: 0.5 } },
      'h: rateLimit: burst must be a whole number in 1..1000000',
    ],
    [
      { handle, rateLimit: { perSecnd: 1 } },
      'h: rateLimit: unknown option "perSecnd" (did you mean "perSecond"?)',
    ],
    [
      { handle, concurrencyPerKey: 0 },
      'h: concurrencyPerKey: expected a whole number in 1..1000000, got number 0',
    ],
  ])('refuses %j', (value, message) => {
    expect(() => parseHandlerOptions('h', value)).toThrow(new ConfigError(message));
  });
});

describe('loadHandlersFolder', () => {
  it('names the file and the option', async () => {
    const { dir, file } = folderWith('resize.mjs', 'concurrency: 0');
    await expect(loadHandlersFolder(new HandlerRegistry(), dir)).rejects.toThrow(
      `handler ${file}: concurrency: 0 is out of range 1..1000`,
    );
  });

  it('makes taskq run exit 2 with that one line, no stack trace', () => {
    const { dir, file } = folderWith('resize.mjs', "timeoutMs: '5000'");
    const { code, stderr } = runCli(['run', '--handlers', dir], { TASKQ_DB: join(dir, '..', 't.db') });
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([
      `taskq: handler ${file}: timeoutMs: expected a number, got string "5000"`,
    ]);
  });
});
