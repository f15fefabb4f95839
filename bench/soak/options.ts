/** Command-line flags of `npm run soak -- ...`. */
import { join } from 'node:path';
import { flagValues } from '../lib/options.js';
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

export function parseSoakOptions(argv: string[]): SoakOptions {
  const opts: SoakOptions = {
    db: undefined,
    minutes: 30,
    rate: 200,
    readRate: 50,
    warmup: 1,
    rowSeconds: 60,
    prefill: 0,
    out: DEFAULT_OUT,
  };
  const { value, integer } = flagValues(argv, USAGE);
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--db':
        opts.db = value(i++, flag);
        break;
      case '--minutes':
        opts.minutes = integer(i++, flag, 1, 24 * 60);
        break;
      case '--rate':
        opts.rate = integer(i++, flag, 1, 10_000);
        break;
      case '--read-rate':
        opts.readRate = integer(i++, flag, 0, 10_000);
        break;
      case '--warmup':
        opts.warmup = integer(i++, flag, 0, 60);
        break;
      case '--row-seconds':
        opts.rowSeconds = integer(i++, flag, 5, 3600);
        break;
      case '--prefill':
        opts.prefill = integer(i++, flag, 0, 100_000_000);
        break;
      case '--out':
        opts.out = value(i++, flag);
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${flag}\n${USAGE}`);
    }
  }
  return opts;
}
