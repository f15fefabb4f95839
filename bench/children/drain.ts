/**
 * Drain: fills the store with N no-op tasks (untimed), then runs one WorkerPool in this process
 * and times from pool start until every task's completion is committed. On a local PostgreSQL it
 * also reads the cluster's CPU (bench/lib/pg-cpu.ts) right before `pool.start()` and right after
 * the last completion: the "drain only" figure. It prints `DRAINING` when the pool starts, so a
 * parent can sample its memory over the drain alone (the memory scenario), and `DRAINED` after the
 * last completion. Usage:
 * node --import tsx bench/children/drain.ts '{"db":"...","n":20000,"concurrency":2,"prefetch":5}'
 * or, compiled as `npm run bench` runs it, node .bench-build/bench/children/drain.js '{...}'
 */
import { performance } from 'node:perf_hooks';
import { resolveConfig } from '../../src/core/config.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { BUILTIN_HANDLERS } from '../../src/handlers/builtin.js';
import { createLogger } from '../../src/logger.js';
import { WorkerPool } from '../../src/worker/worker-pool.js';
import { openPgCpuMeter, pgCpuFigure } from '../lib/pg-cpu.js';
import { analyzeSchema, completedTasks, fill, open } from '../lib/store.js';
import { emitResult, round, watchdog } from '../lib/util.js';
import { registerTracing, type TracingMode } from '../lib/tracing.js';

interface DrainConfig {
  db: string;
  n: number;
  concurrency: number;
  prefetch: number;
  timeoutMs?: number;
  /** Overrides the pool's ack delay (for tuning experiments). */
  ackDelayMs?: number;
  /** Tasks per insert transaction of the (untimed) fill. @defaultValue 1000 */
  fillBatch?: number;
  /** An OpenTelemetry SDK registered before the pool starts (the tracing scenario). */
  tracing?: TracingMode;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as DrainConfig;
watchdog(cfg.timeoutMs ?? 120_000, 'drain');
const tracing = registerTracing(cfg.tracing ?? 'off');
const defaults = resolveConfig({ db: cfg.db });
const driver = await open(cfg.db);
await fill(driver, cfg.n, cfg.fillBatch);
// As the peers do after their fill (PostgreSQL): the planner sees the table as it is.
await analyzeSchema(cfg.db);
const meter = await openPgCpuMeter(cfg.db);

const registry = new HandlerRegistry([...BUILTIN_HANDLERS, { action: 'noop', handle: () => null }]);
const pool = new WorkerPool({
  driver,
  registry,
  logger: createLogger('warn'),
  concurrency: cfg.concurrency,
  prefetch: cfg.prefetch,
  leaseMs: defaults.leaseMs,
  pollMs: defaults.pollMs,
  taskTimeoutMs: defaults.taskTimeoutMs,
  backoff: { baseMs: defaults.backoffMs, maxMs: defaults.backoffMaxMs },
  ...(cfg.ackDelayMs === undefined ? {} : { ackDelayMs: cfg.ackDelayMs }),
});
// Held tasks are sampled to check the policy (running <= concurrency, buffered <= prefetch).
let maxHeld = 0;
let written = 0;
// Round trips per task: claims and result batches (what a claim's and an ack's fixed cost divide by).
let claims = 0;
let ackBatches = 0;
let firstMs = 0;
let resolveDone = (): void => undefined;
const done = new Promise<void>((resolve) => (resolveDone = resolve));
pool.on('claimed', (tasks) => {
  const { running, buffered } = pool.held;
  maxHeld = Math.max(maxHeld, running + buffered + tasks.length);
  claims++;
});
pool.on('resultsWritten', (count) => {
  if (written === 0) firstMs = performance.now() - t0;
  written += count;
  ackBatches++;
  if (written >= cfg.n) resolveDone();
});

const pg0 = await meter?.read();
process.stdout.write('DRAINING\n');
const cpu0 = process.cpuUsage();
const t0 = performance.now();
pool.start();
await done;
const ms = performance.now() - t0;
process.stdout.write('DRAINED\n');
const cpu = process.cpuUsage(cpu0);
const pg1 = await meter?.read();
await meter?.close();
await pool.stop({ graceMs: 1000 });
const completed = await completedTasks(driver);
await driver.close();
emitResult({
  n: cfg.n,
  concurrency: cfg.concurrency,
  prefetch: cfg.prefetch,
  ms: round(ms),
  rate: round(cfg.n / (ms / 1000)),
  firstMs: round(firstMs, 2),
  // CPU time per task is steadier than wall time on a shared machine.
  cpuUsPerTask: round((cpu.user + cpu.system) / cfg.n, 1),
  completedInDb: completed,
  maxHeld,
  tasksPerClaim: round(cfg.n / Math.max(1, claims), 2),
  tasksPerAckBatch: round(written / Math.max(1, ackBatches), 1),
  peakRssMiB: round(process.resourceUsage().maxRSS / 1024),
  pgCpuDrain: pg0 && pg1 ? pgCpuFigure(pg0, pg1, cfg.n) : null,
  spans: tracing.spans(),
});
process.exit(0);
