/**
 * The command lines of `npm run bench` and `npm run soak`: Node's `util.parseArgs` reads them
 * (strict: an unknown flag, a missing value or a stray argument is an error), and this adds whole
 * numbers within bounds and `--help`. A bad command line prints one line and the usage, and exits 2.
 */
import { parseArgs } from 'node:util';

export type FlagSpec =
  { type: 'boolean' } | { type: 'string' } | { type: 'integer'; min: number; max: number };

/** What a table of flags parses to: each flag given, under its own name, with its type. */
export type FlagValues<S extends Record<string, FlagSpec>> = {
  [K in keyof S]?: S[K] extends { type: 'boolean' }
    ? boolean
    : S[K] extends { type: 'integer' }
      ? number
      : string;
};

/** Parses `argv` by `specs`; prints `usage` and exits 0 on `--help` / `-h`. */
export function parseFlags<S extends Record<string, FlagSpec>>(
  argv: string[],
  specs: S,
  usage: string,
): FlagValues<S> {
  const options: Record<string, { type: 'boolean' | 'string' }> = Object.fromEntries(
    Object.entries(specs).map(([name, spec]) => [
      name,
      { type: spec.type === 'boolean' ? 'boolean' : 'string' },
    ]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    return usageError((err as Error).message, usage);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const parsed: Record<string, string | boolean | number> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const value = values[name];
    if (value === undefined) continue;
    if (spec.type !== 'integer') parsed[name] = value;
    else {
      const n = Number(value);
      if (!Number.isInteger(n) || n < spec.min || n > spec.max)
        usageError(
          `--${name} must be a whole number in ${spec.min}..${spec.max}, got "${String(value)}"`,
          usage,
        );
      parsed[name] = n;
    }
  }
  // Each entry was read by its own spec above, so it has the type FlagValues gives it.
  return parsed as FlagValues<S>;
}

/** Says what is wrong with the command line, then the usage, and exits 2. */
export function usageError(message: string, usage: string): never {
  console.error(`${message}\n\n${usage}`);
  process.exit(2);
}
