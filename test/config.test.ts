/** The settings table: the type it gives, its defaults, its flags, and its "did you mean". */
import { Command } from 'commander';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { SERVICE_SETTINGS, addSettings, configFrom } from '../src/cli/options.js';
import {
  BODY_LIMIT_DEFAULT,
  PORT_DEFAULT,
  SETTINGS,
  SETTING_KEYS,
  closest,
  editDistance,
  resolveConfig,
  type Config,
  type LogLevel,
  type Role,
} from '../src/core/config.js';

describe('Config', () => {
  it('is derived from the table, optional settings included', () => {
    expectTypeOf<Config['port']>().toEqualTypeOf<number>();
    expectTypeOf<Config['role']>().toEqualTypeOf<Role>();
    expectTypeOf<Config['logLevel']>().toEqualTypeOf<LogLevel>();
    expectTypeOf<Config['strictActions']>().toEqualTypeOf<boolean>();
    expectTypeOf<Config['handlers']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Config['retentionCompletedMs']>().toEqualTypeOf<number>();
  });

  it('resolves every default, frozen, with one property per setting', () => {
    const config = resolveConfig({}, {});
    expect(Object.keys(config)).toEqual(SETTING_KEYS);
    expect(Object.isFrozen(config)).toBe(true);
    expect(config.port).toBe(PORT_DEFAULT);
    expect(config.bodyLimit).toBe(BODY_LIMIT_DEFAULT);
    expect(config.retentionCompletedMs).toBe(7 * 86_400_000);
    expect(config.handlers).toBeUndefined();
  });

  it('takes input over the environment over the default', () => {
    expect(resolveConfig({}, { PORT: '9000' }).port).toBe(9000);
    expect(resolveConfig({ port: 9001 }, { PORT: '9000' }).port).toBe(9001);
    expect(resolveConfig({}, { TASKQ_LOG_LEVEL: 'DEBUG' }).logLevel).toBe('debug');
  });
});

describe('--rate-limit', () => {
  it('reads action=perSecond[:burst], comma-separated', () => {
    const config = resolveConfig({}, { TASKQ_RATE_LIMITS: 'send-email=20:5, resize=0.5' });
    expect(config.rateLimits).toEqual(
      new Map([
        ['send-email', { perSecond: 20, burst: 5 }],
        ['resize', { perSecond: 0.5, burst: 1 }],
      ]),
    );
    expect(resolveConfig({}, {}).rateLimits).toBeUndefined();
  });

  it.each([
    ['send-email', '"send-email" is not action=perSecond[:burst]'],
    ['a=1,a=2', 'action "a" is given twice'],
    ['a=0', 'a: perSecond must be a number above 0'],
    ['a=1:0', 'a: burst must be a whole number in 1..1000000'],
  ])('refuses %j, naming the setting', (text, message) => {
    expect(() => resolveConfig({}, { TASKQ_RATE_LIMITS: text })).toThrow(
      `--rate-limit (TASKQ_RATE_LIMITS): ${message}`,
    );
  });
});

describe('suggestions', () => {
  it('counts insertions, deletions, substitutions and transpositions as one edit each', () => {
    expect(editDistance('concurrency', 'concurrency')).toBe(0);
    expect(editDistance('concurency', 'concurrency')).toBe(1);
    expect(editDistance('concurrencyy', 'concurrency')).toBe(1);
    expect(editDistance('concurrencx', 'concurrency')).toBe(1);
    expect(editDistance('cocnurrency', 'concurrency')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests the nearest name within the bound, and nothing for a far one', () => {
    expect(closest('concurency', SETTING_KEYS)).toBe('concurrency');
    expect(closest('leasems', SETTING_KEYS)).toBe('leaseMs');
    expect(closest('taskTimeout', SETTING_KEYS)).toBe('taskTimeoutMs');
    expect(closest('bd', SETTING_KEYS)).toBe('db');
    expect(closest('x', SETTING_KEYS)).toBeUndefined();
    expect(closest('colour', SETTING_KEYS)).toBeUndefined();
    // The old 3-character prefix match would have offered "concurrency" here.
    expect(closest('conclusion', SETTING_KEYS)).toBeUndefined();
  });

  it('puts the suggestion in the unknown-setting error', () => {
    expect(() => resolveConfig({ concurency: 4 } as never, {})).toThrow(
      'unknown setting "concurency" (did you mean "concurrency"?)',
    );
    expect(() => resolveConfig({ colour: 'red' } as never, {})).toThrow(/^unknown setting "colour"$/);
  });
});

describe('flags', () => {
  const parse = (args: string[]) => {
    const command = addSettings(new Command('run').exitOverride(), SERVICE_SETTINGS);
    command.parse(args, { from: 'user' });
    return command.opts();
  };

  it('gives taskq run every setting but the producer commands’ --url and --token', () => {
    expect(SERVICE_SETTINGS).toEqual(SETTING_KEYS.filter((k) => k !== 'url' && k !== 'token'));
    const help = addSettings(new Command('run'), SERVICE_SETTINGS).helpInformation();
    for (const key of SERVICE_SETTINGS) expect(help).toContain(SETTINGS[key].flag);
  });

  it('reads a flag whose setting key differs from its name (--retention-completed)', () => {
    expect(configFrom(parse(['--retention-completed', '1d'])).retentionCompletedMs).toBe(86_400_000);
    expect(() => configFrom(parse(['--retention-failed', 'soon']))).toThrow(/--retention-failed \(flag\)/);
  });

  it('reads a switch and a connection limit', () => {
    const config = configFrom(parse(['--strict-actions', '--max-connections', '5']));
    expect(config.strictActions).toBe(true);
    expect(config.maxConnections).toBe(5);
  });
});
