/**
 * The flags of a bench script run on its own (`node --import tsx bench/<script>.ts ...`):
 * `--help` prints the usage and exits 0; without `--db`, the usage goes to stderr with exit 2.
 */
export interface ScriptArgs {
  db: string;
  /** The value after `--name`, if given. */
  flag: (name: string) => string | undefined;
  /** Whether `--name` is given. */
  has: (name: string) => boolean;
}

export function scriptArgs(usage: string, argv = process.argv.slice(2)): ScriptArgs {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const db = flag('db');
  if (!db) {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
  return { db, flag, has: (name) => argv.includes(`--${name}`) };
}
