/** Command-line flags of `npm run bench -- ...`. */
export const SCENARIOS = ['http', 'drain', 'e2e', 'latency', 'scaling', 'peers'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchOptions {
  /** postgres://... uses that database; anything else is a folder for the temp SQLite files. */
  db: string | undefined;
  only: ScenarioName[] | undefined;
  quick: boolean;
  peers: boolean;
  /** Largest worker-process count of the scaling run (1, 2, 4, ... up to it); 0 = no scaling run. */
  workers: number;
  connections: number;
  httpSeconds: number;
  /** Alternating bare/taskq rounds of the HTTP test. */
  httpRounds: number;
  drainTasks: number;
  e2eTasks: number;
  latencyTasks: number;
  out: string | undefined;
}

const USAGE = `npm run bench -- [--db postgres://...|DIR] [--only ${SCENARIOS.join(',')}] [--quick] [--peers] [--workers N] [--out FILE]`;

export function parseOptions(argv: string[]): BenchOptions {
  const opts: BenchOptions = {
    db: undefined,
    only: undefined,
    quick: false,
    peers: false,
    workers: 0,
    connections: 50,
    httpSeconds: 10,
    httpRounds: 3,
    drainTasks: 20_000,
    e2eTasks: 20_000,
    latencyTasks: 200,
    out: undefined,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value\n${USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--db':
        opts.db = value(i++, flag);
        break;
      case '--only': {
        const names = value(i++, flag).split(',');
        for (const n of names)
          if (!(SCENARIOS as readonly string[]).includes(n))
            throw new Error(`unknown scenario ${n}\n${USAGE}`);
        opts.only = names as ScenarioName[];
        break;
      }
      case '--quick':
        opts.quick = true;
        break;
      case '--peers':
        opts.peers = true;
        break;
      case '--workers': {
        const n = Number(value(i++, flag));
        if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error('--workers must be 1..16');
        opts.workers = n;
        break;
      }
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
  if (opts.quick) {
    opts.httpSeconds = 3;
    opts.httpRounds = 1;
    opts.drainTasks = 5_000;
    opts.e2eTasks = 5_000;
    opts.latencyTasks = 100;
  }
  return opts;
}

/** Whether a scenario runs: --only wins; otherwise the defaults plus the opted-in ones. */
export function wants(opts: BenchOptions, name: ScenarioName): boolean {
  if (opts.only) return opts.only.includes(name);
  if (name === 'peers') return opts.peers;
  if (name === 'scaling') return opts.workers > 0;
  return true;
}
