/** Command-line flags of `npm run soak -- ...`. */
import { join } from 'node:path';
import { parseFlags, type FlagSpec } from '../lib/flags.js';
import { ROOT } from '../lib/proc.js';

export interface SoakOptions {
  /** postgres://... uses that database; anything else is a folder for the temp SQLite file. */
  db: string | undefined;
  minutes: number;
  /** POST /tasks per second. */
  rate: number;
  /** GETs per second (task pages, single tasks, /stats); /metrics comes on top, once a row. */
  readRate: number;
  /** Leading rows left out of the flatness verdict. */
  warmup: number;
  /** Length of one row; 60 but for trying the script out. */
  rowSeconds: number;
  /** Tasks queued and worked off before the clock starts, so the run starts on a grown database. */
  prefill: number;
  out: string;
}

export const DEFAULT_OUT = join(ROOT, 'bench', 'results', 'soak-latest.json');

export const USAGE = `npm run soak -- [flags]

Steady mixed load against one real \`taskq run\` process (role all), one row a minute, and a
verdict on whether every series stayed flat. Not part of npm test or CI.

  --minutes N        how long the load runs (default 30)
  --rate N           POST /tasks per second, open loop (default 200): uppercase and sum tasks,
                     and a fifth "flaky" ones that fail once (then complete) or three times
                     (then end failed), so retries and failures happen all along
  --read-rate N      GETs per second besides (default 50): GET /tasks/:id of recent tasks, GET
                     /tasks pages with status/action filters (some follow next_cursor), /stats;
                     /metrics is read once a row, and one /events/stats stream stays open
  --db URL|DIR       postgres://... soaks PostgreSQL in the URL's ?schema= (default taskq_soak),
                     which is dropped and created first; DIR holds the temp SQLite file (default:
                     a new temp folder, removed at exit)
  --warmup N         leading rows left out of the verdict (default 1)
  --row-seconds N    length of a row (default 60; shorter only to try the script out)
  --prefill N        before the clock starts, queue N tasks (POST /tasks/batch) and let taskq
                     work them off, so the soak measures a service on a database larger than
                     its page cache instead of the cache filling up (default 0)
  --out FILE         the JSON result (default bench/results/soak-latest.json)
  --help             this text

Flat: after the warm-up rows, the median of the last third of the rows is compared with the
median of the first third; each series has a limit (docs/benchmarks.md, "Soak").`;

const FLAGS = {
  db: { type: 'string' },
  minutes: { type: 'integer', min: 1, max: 24 * 60 },
  rate: { type: 'integer', min: 1, max: 10_000 },
  'read-rate': { type: 'integer', min: 0, max: 10_000 },
  warmup: { type: 'integer', min: 0, max: 60 },
  'row-seconds': { type: 'integer', min: 5, max: 3600 },
  prefill: { type: 'integer', min: 0, max: 100_000_000 },
  out: { type: 'string' },
} as const satisfies Record<string, FlagSpec>;

export function parseSoakOptions(argv: string[]): SoakOptions {
  const flags = parseFlags(argv, FLAGS, USAGE);
  return {
    db: flags.db,
    minutes: flags.minutes ?? 30,
    rate: flags.rate ?? 200,
    readRate: flags['read-rate'] ?? 50,
    warmup: flags.warmup ?? 1,
    rowSeconds: flags['row-seconds'] ?? 60,
    prefill: flags.prefill ?? 0,
    out: flags.out ?? DEFAULT_OUT,
  };
}
