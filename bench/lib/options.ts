/** Command-line flags of `npm run bench -- ...`. */
export const SCENARIOS = [
  'http',
  'drain',
  'e2e',
  'latency',
  'scaling',
  'memory',
  'peers',
  'tracing',
  'filters',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchOptions {
  /** postgres://... uses that database; anything else is a folder for the temp SQLite files. */
  db: string | undefined;
  only: ScenarioName[] | undefined;
  quick: boolean;
  peers: boolean;
  /** `--peers-only a,b`: only the peer tests whose label contains one of these (implies --peers). */
  peersOnly: string[] | undefined;
  /** The opt-in memory scenario (`--memory`, or `--only memory`). */
  memory: boolean;
  /** The opt-in tracing scenario (`--tracing`, or `--only tracing`). */
  tracing: boolean;
  /** The opt-in filters-at-scale scenario (`--filters`, or `--only filters`). */
  filters: boolean;
  /** Tasks the filters scenario fills its table with. */
  filterRows: number;
  /** Tasks the memory scenario's worker node drains. */
  memoryTasks: number;
  /** Seconds of HTTP load on the memory scenario's api node. */
  memoryHttpSeconds: number;
  /** Largest worker-process count of the scaling run (1, 2, 4, ... up to it); 0 = no scaling run. */
  workers: number;
  connections: number;
  httpSeconds: number;
  /** Alternating bare/taskq rounds of the HTTP test. */
  httpRounds: number;
  drainTasks: number;
  /** Alternating taskq/graphile-worker rounds of each drain when graphile runs beside it. */
  drainRounds: number;
  e2eTasks: number;
  latencyTasks: number;
  out: string | undefined;
}

const USAGE = `npm run bench -- [--db postgres://...|DIR] [--only ${SCENARIOS.join(',')}] [--quick] [--peers] [--peers-only LABEL,...] [--workers N] [--memory] [--tracing] [--filters] [--filter-rows N] [--memory-tasks N] [--memory-seconds S] [--drain-tasks N] [--drain-rounds N] [--out FILE]`;

/** Readers of the value after the flag at argv[i] (shared by the bench's and the soak's flags). */
export function flagValues(argv: string[], usage: string) {
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value\n${usage}`);
    return v;
  };
  const integer = (i: number, flag: string, min: number, max: number): number => {
    const n = Number(value(i, flag));
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag} must be ${min}..${max}`);
    return n;
  };
  return { value, integer };
}

export function parseOptions(argv: string[]): BenchOptions {
  const opts: BenchOptions = {
    db: undefined,
    only: undefined,
    quick: false,
    peers: false,
    peersOnly: undefined,
    memory: false,
    tracing: false,
    filters: false,
    filterRows: 1_000_000,
    memoryTasks: 1_000_000,
    memoryHttpSeconds: 60,
    workers: 0,
    connections: 50,
    httpSeconds: 10,
    httpRounds: 3,
    drainTasks: 20_000,
    drainRounds: 3,
    e2eTasks: 20_000,
    latencyTasks: 200,
    out: undefined,
  };
  const { value, integer } = flagValues(argv, USAGE);
  // Sizes given on the command line win over --quick's, whichever comes first.
  const explicit: Partial<BenchOptions> = {};
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
      case '--peers-only':
        opts.peers = true;
        opts.peersOnly = value(i++, flag).split(',');
        break;
      case '--workers':
        opts.workers = integer(i++, flag, 1, 16);
        break;
      case '--memory':
        opts.memory = true;
        break;
      case '--filters':
        opts.filters = true;
        break;
      case '--filter-rows':
        opts.filterRows = integer(i++, flag, 1000, 100_000_000);
        break;
      case '--tracing':
        opts.tracing = true;
        break;
      case '--memory-tasks':
        explicit.memoryTasks = integer(i++, flag, 1000, 10_000_000);
        break;
      case '--memory-seconds':
        explicit.memoryHttpSeconds = integer(i++, flag, 1, 3600);
        break;
      case '--drain-tasks':
        explicit.drainTasks = integer(i++, flag, 100, 10_000_000);
        break;
      case '--drain-rounds':
        explicit.drainRounds = integer(i++, flag, 1, 9);
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
  if (opts.quick) {
    opts.httpSeconds = 3;
    opts.httpRounds = 1;
    opts.drainTasks = 5_000;
    opts.drainRounds = 1;
    opts.e2eTasks = 5_000;
    opts.latencyTasks = 100;
    opts.memoryTasks = 100_000;
    opts.memoryHttpSeconds = 10;
  }
  return { ...opts, ...explicit };
}

/** Whether a scenario runs: --only wins; otherwise the defaults plus the opted-in ones. */
export function wants(opts: BenchOptions, name: ScenarioName): boolean {
  if (opts.only) return opts.only.includes(name);
  if (name === 'peers') return opts.peers;
  if (name === 'scaling') return opts.workers > 0;
  if (name === 'memory') return opts.memory;
  if (name === 'tracing') return opts.tracing;
  if (name === 'filters') return opts.filters;
  return true;
}
