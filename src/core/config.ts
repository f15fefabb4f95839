/**
 * Every setting is declared once here: its flag, its environment variable, its default and its
 * check. The CLI builds its options from this table, the README's settings table documents it
 * (test/settings-doc.test.ts compares them), and `resolveConfig` applies it: flag, then env, then
 * default; a bad value throws a ConfigError naming the setting, and the result is frozen.
 */
import { ConfigError } from './errors.js';

type Kind =
  | { type: 'int'; min: number; max: number }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'string'; allowEmpty?: boolean }
  | { type: 'bool' }
  | { type: 'duration' };

export interface SettingSpec {
  key: keyof Config;
  flag: string;
  env: string[];
  default: string | number | boolean | undefined;
  kind: Kind;
  description: string;
}

export const ROLES = ['all', 'api', 'worker'] as const;
export type Role = (typeof ROLES)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const SYNC_MODES = ['full', 'normal'] as const;
export type SyncMode = (typeof SYNC_MODES)[number];

export interface Config {
  db: string;
  port: number;
  host: string;
  role: Role;
  concurrency: number;
  prefetch: number;
  logLevel: LogLevel;
  handlers: string | undefined;
  strictActions: boolean;
  bodyLimit: number;
  maxAttempts: number;
  taskTimeoutMs: number;
  leaseMs: number;
  pollMs: number;
  backoffMs: number;
  backoffMaxMs: number;
  shutdownGraceMs: number;
  sync: SyncMode;
  pgPoolSize: number;
  apiToken: string | undefined;
  idempotencyWindowMs: number;
  url: string;
  retentionCompletedMs: number;
  retentionFailedMs: number;
  schedules: string | undefined;
  maxEventStreams: number;
  keepAliveTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
}

export const SETTINGS: readonly SettingSpec[] = [
  {
    key: 'db',
    flag: '--db',
    env: ['TASKQ_DB'],
    default: './data/tasks.db',
    kind: { type: 'string' },
    description: 'SQLite file path (parent folders are created) or a postgres:// URL',
  },
  {
    key: 'port',
    flag: '--port',
    env: ['PORT', 'TASKQ_PORT'],
    default: 8080,
    kind: { type: 'int', min: 0, max: 65535 },
    description: 'HTTP port (0 picks a free one)',
  },
  {
    key: 'host',
    flag: '--host',
    env: ['HOST', 'TASKQ_HOST'],
    default: '0.0.0.0',
    kind: { type: 'string' },
    description: 'address to listen on; the default is every IPv4 interface',
  },
  {
    key: 'role',
    flag: '--role',
    env: ['TASKQ_ROLE'],
    default: 'all',
    kind: { type: 'enum', values: ROLES },
    description: 'all: API and workers; api: only the API; worker: only workers (and /healthz)',
  },
  {
    key: 'concurrency',
    flag: '--concurrency',
    env: ['TASKQ_CONCURRENCY'],
    default: 2,
    kind: { type: 'int', min: 1, max: 1000 },
    description: 'handlers running at once in this process',
  },
  {
    key: 'prefetch',
    flag: '--prefetch',
    env: ['TASKQ_PREFETCH'],
    default: 5,
    kind: { type: 'int', min: 0, max: 10000 },
    description: 'claimed tasks waiting in memory beyond those running',
  },
  {
    key: 'logLevel',
    flag: '--log-level',
    env: ['TASKQ_LOG_LEVEL', 'LOG_LEVEL'],
    default: 'info',
    kind: { type: 'enum', values: LOG_LEVELS },
    description: 'pino log level; request logs are at debug',
  },
  {
    key: 'handlers',
    flag: '--handlers',
    env: ['TASKQ_HANDLERS'],
    default: undefined,
    kind: { type: 'string' },
    description: 'folder of handler modules (.js, .mjs, .ts); one action per file',
  },
  {
    key: 'strictActions',
    flag: '--strict-actions',
    env: ['TASKQ_STRICT_ACTIONS'],
    default: false,
    kind: { type: 'bool' },
    description: 'refuse unknown actions at POST (400) instead of the {output:"processed"} fallback',
  },
  {
    key: 'bodyLimit',
    flag: '--body-limit',
    env: ['TASKQ_BODY_LIMIT'],
    default: 1048576,
    kind: { type: 'int', min: 1024, max: 1073741824 },
    description: 'largest request body in bytes (413 above)',
  },
  {
    key: 'maxAttempts',
    flag: '--max-attempts',
    env: ['TASKQ_MAX_ATTEMPTS'],
    default: 3,
    kind: { type: 'int', min: 1, max: 100 },
    description: 'default max_attempts of a task',
  },
  {
    key: 'taskTimeoutMs',
    flag: '--task-timeout-ms',
    env: ['TASKQ_TASK_TIMEOUT_MS'],
    default: 60000,
    kind: { type: 'int', min: 1, max: 86400000 },
    description: 'a handler running longer is aborted and nacked',
  },
  {
    key: 'leaseMs',
    flag: '--lease-ms',
    env: ['TASKQ_LEASE_MS'],
    default: 10000,
    kind: { type: 'int', min: 200, max: 3600000 },
    description: 'lease of a claimed task; renewed every third of it, rescued when expired',
  },
  {
    key: 'pollMs',
    flag: '--poll-ms',
    env: ['TASKQ_POLL_MS'],
    default: 1000,
    kind: { type: 'int', min: 10, max: 600000 },
    description:
      'idle workers look for work this often (new tasks in this process, or NOTIFY, wake them at once)',
  },
  {
    key: 'backoffMs',
    flag: '--backoff-ms',
    env: ['TASKQ_BACKOFF_MS'],
    default: 1000,
    kind: { type: 'int', min: 0, max: 86400000 },
    description: 'base of the exponential retry backoff',
  },
  {
    key: 'backoffMaxMs',
    flag: '--backoff-max-ms',
    env: ['TASKQ_BACKOFF_MAX_MS'],
    default: 3600000,
    kind: { type: 'int', min: 0, max: 604800000 },
    description: 'longest retry backoff',
  },
  {
    key: 'shutdownGraceMs',
    flag: '--shutdown-grace-ms',
    env: ['TASKQ_SHUTDOWN_GRACE_MS'],
    default: 10000,
    kind: { type: 'int', min: 0, max: 3600000 },
    description: 'on SIGTERM, how long running handlers may take to finish',
  },
  {
    key: 'sync',
    flag: '--sync',
    env: ['TASKQ_SYNC'],
    default: 'full',
    kind: { type: 'enum', values: SYNC_MODES },
    description:
      'SQLite durability: full fsyncs every commit a client relies on (accept, result); normal may lose the last commits on power loss, never on a crash',
  },
  {
    key: 'pgPoolSize',
    flag: '--pg-pool-size',
    env: ['TASKQ_PG_POOL_SIZE'],
    default: 10,
    kind: { type: 'int', min: 2, max: 1000 },
    description: 'PostgreSQL connections per process',
  },
  {
    key: 'idempotencyWindowMs',
    flag: '--idempotency-window-ms',
    env: ['TASKQ_IDEMPOTENCY_WINDOW_MS'],
    default: 86400000,
    kind: { type: 'int', min: 1000, max: 31536000000 },
    description: 'how long an Idempotency-Key (or unique_key) answers with the original task',
  },
  {
    key: 'apiToken',
    flag: '--api-token',
    env: ['TASKQ_API_TOKEN'],
    default: undefined,
    kind: { type: 'string' },
    description: 'when set, every route but /healthz needs Authorization: Bearer <token>',
  },
  {
    key: 'url',
    flag: '--url',
    env: ['TASKQ_URL'],
    default: 'http://localhost:8080',
    kind: { type: 'string' },
    description: 'where the producer commands (enqueue, tasks, stats) find a running service',
  },
  {
    key: 'retentionCompletedMs',
    flag: '--retention-completed',
    env: ['TASKQ_RETENTION_COMPLETED'],
    default: '7d',
    kind: { type: 'duration' },
    description: 'completed tasks older than this are pruned in the background (e.g. 7d, 12h; 0 keeps them)',
  },
  {
    key: 'retentionFailedMs',
    flag: '--retention-failed',
    env: ['TASKQ_RETENTION_FAILED'],
    default: '30d',
    kind: { type: 'duration' },
    description: 'failed and cancelled tasks older than this are pruned in the background (0 keeps them)',
  },
  {
    key: 'schedules',
    flag: '--schedules',
    env: ['TASKQ_SCHEDULES'],
    default: undefined,
    kind: { type: 'string' },
    description: 'JSON file of recurring tasks: [{name, cron, timezone?, action, data?}]',
  },
  {
    key: 'maxEventStreams',
    flag: '--max-event-streams',
    env: ['TASKQ_MAX_EVENT_STREAMS'],
    default: 1000,
    kind: { type: 'int', min: 0, max: 1000000 },
    description:
      'event streams (GET /events/stats, /tasks/:id/events) open at once in this process; more answer 503',
  },
  {
    key: 'keepAliveTimeoutMs',
    flag: '--keep-alive-timeout-ms',
    env: ['TASKQ_KEEP_ALIVE_TIMEOUT_MS'],
    default: 72000,
    kind: { type: 'int', min: 1000, max: 3600000 },
    description:
      "an idle keep-alive connection is closed after this long; keep it above a load balancer's idle timeout",
  },
  {
    key: 'headersTimeoutMs',
    flag: '--headers-timeout-ms',
    env: ['TASKQ_HEADERS_TIMEOUT_MS'],
    default: 20000,
    kind: { type: 'int', min: 100, max: 3600000 },
    description:
      'a connection that has not sent a whole request line and headers within this gets 408 and is closed',
  },
  {
    key: 'requestTimeoutMs',
    flag: '--request-timeout-ms',
    env: ['TASKQ_REQUEST_TIMEOUT_MS'],
    default: 60000,
    kind: { type: 'int', min: 0, max: 3600000 },
    description: 'a request whose body has not arrived within this gets 408 and is closed (0: no limit)',
  },
  {
    key: 'maxConnections',
    flag: '--max-connections',
    env: ['TASKQ_MAX_CONNECTIONS'],
    default: 10000,
    kind: { type: 'int', min: 0, max: 1000000 },
    description:
      'open connections per process; more are closed as they arrive (0: no limit; keep below ulimit -n)',
  },
];

export type ConfigInput = Partial<Record<keyof Config, string | number | boolean | undefined>>;

function parseValue(
  spec: SettingSpec,
  raw: string | number | boolean,
  source: string,
): string | number | boolean {
  const name = `${spec.flag} (${source})`;
  const kind = spec.kind;
  switch (kind.type) {
    case 'int': {
      const text = String(raw).trim();
      if (!/^-?\d+$/.test(text)) throw new ConfigError(`${name}: expected a whole number, got "${raw}"`);
      const n = Number(text);
      if (n < kind.min || n > kind.max) {
        throw new ConfigError(`${name}: ${n} is out of range ${kind.min}..${kind.max}`);
      }
      return n;
    }
    case 'enum': {
      const text = String(raw).trim().toLowerCase();
      if (!kind.values.includes(text)) {
        throw new ConfigError(`${name}: "${raw}" is not one of ${kind.values.join(', ')}`);
      }
      return text;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const text = raw.toString().trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(text)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(text)) return false;
      throw new ConfigError(`${name}: expected true or false, got "${raw}"`);
    }
    case 'duration': {
      const ms = parseDuration(String(raw));
      if (ms === null)
        throw new ConfigError(`${name}: expected a duration like 500ms, 30s, 15m, 12h or 7d, got "${raw}"`);
      return ms;
    }
    case 'string': {
      const text = String(raw);
      if (text.trim() === '' && !kind.allowEmpty) throw new ConfigError(`${name}: must not be empty`);
      return text;
    }
  }
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `30m`, `45s`, `500ms` or a bare number of milliseconds; null when not a duration. */
export function parseDuration(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) return null;
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? 'ms'] as number));
}

/**
 * Resolves settings: explicit input (CLI flags or code) wins, then the environment, then defaults.
 * Unknown input keys are a programming error and rejected with a suggestion.
 */
export function resolveConfig(
  input: ConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): Readonly<Config> {
  const known = new Set(SETTINGS.map((s) => s.key as string));
  for (const key of Object.keys(input)) {
    if (!known.has(key)) {
      const hint = [...known].find((k) => k.toLowerCase().startsWith(key.toLowerCase().slice(0, 3)));
      throw new ConfigError(`unknown setting "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const given = input[spec.key];
    const envName = spec.env.find((name) => env[name] !== undefined);
    if (given !== undefined) out[spec.key] = parseValue(spec, given, 'flag');
    else if (envName !== undefined) out[spec.key] = parseValue(spec, env[envName] as string, envName);
    else out[spec.key] = spec.default === undefined ? undefined : parseValue(spec, spec.default, 'default');
  }
  const config = out as unknown as Config;
  // Node refuses a headers timeout above a request timeout: say which settings, not its error.
  if (config.requestTimeoutMs !== 0 && config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(
      `--headers-timeout-ms (${config.headersTimeoutMs}) must not exceed --request-timeout-ms (${config.requestTimeoutMs})`,
    );
  }
  return Object.freeze(config);
}

/** True when `db` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}
