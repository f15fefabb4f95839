/** Command-line flags of `npm run bench -- ...`. */
import { parseFlags, usageError, type FlagSpec } from './flags.js';

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

const FLAGS = {
  db: { type: 'string' },
  only: { type: 'string' },
  quick: { type: 'boolean' },
  peers: { type: 'boolean' },
  'peers-only': { type: 'string' },
  workers: { type: 'integer', min: 1, max: 16 },
  memory: { type: 'boolean' },
  tracing: { type: 'boolean' },
  filters: { type: 'boolean' },
  'filter-rows': { type: 'integer', min: 1000, max: 100_000_000 },
  'memory-tasks': { type: 'integer', min: 1000, max: 10_000_000 },
  'memory-seconds': { type: 'integer', min: 1, max: 3600 },
  'drain-tasks': { type: 'integer', min: 100, max: 10_000_000 },
  'drain-rounds': { type: 'integer', min: 1, max: 9 },
  out: { type: 'string' },
} as const satisfies Record<string, FlagSpec>;

type Sizes = Pick<
  BenchOptions,
  | 'httpSeconds'
  | 'httpRounds'
  | 'drainTasks'
  | 'drainRounds'
  | 'e2eTasks'
  | 'latencyTasks'
  | 'memoryTasks'
  | 'memoryHttpSeconds'
>;

const SIZES: Sizes = {
  httpSeconds: 10,
  httpRounds: 3,
  drainTasks: 20_000,
  drainRounds: 3,
  e2eTasks: 20_000,
  latencyTasks: 200,
  memoryTasks: 1_000_000,
  memoryHttpSeconds: 60,
};

/** `--quick`: a run of a minute or two, to try the bench out. */
const QUICK_SIZES: Sizes = {
  httpSeconds: 3,
  httpRounds: 1,
  drainTasks: 5_000,
  drainRounds: 1,
  e2eTasks: 5_000,
  latencyTasks: 100,
  memoryTasks: 100_000,
  memoryHttpSeconds: 10,
};

export function parseOptions(argv: string[]): BenchOptions {
  const flags = parseFlags(argv, FLAGS, USAGE);
  const only = flags.only?.split(',');
  for (const name of only ?? [])
    if (!(SCENARIOS as readonly string[]).includes(name)) usageError(`unknown scenario ${name}`, USAGE);
  const quick = flags.quick ?? false;
  const sizes = quick ? QUICK_SIZES : SIZES;
  const peersOnly = flags['peers-only']?.split(',');
  return {
    db: flags.db,
    only: only as ScenarioName[] | undefined,
    quick,
    peers: (flags.peers ?? false) || peersOnly !== undefined,
    peersOnly,
    memory: flags.memory ?? false,
    tracing: flags.tracing ?? false,
    filters: flags.filters ?? false,
    filterRows: flags['filter-rows'] ?? 1_000_000,
    workers: flags.workers ?? 0,
    connections: 50,
    ...sizes,
    // Sizes given on the command line win over --quick's.
    memoryTasks: flags['memory-tasks'] ?? sizes.memoryTasks,
    memoryHttpSeconds: flags['memory-seconds'] ?? sizes.memoryHttpSeconds,
    drainTasks: flags['drain-tasks'] ?? sizes.drainTasks,
    drainRounds: flags['drain-rounds'] ?? sizes.drainRounds,
    out: flags.out,
  };
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
