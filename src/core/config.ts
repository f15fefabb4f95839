/**
 * Every setting is declared once here: its flag, its environment variable, its default and its
 * check. The `Config` type is derived from this table, the CLI builds its flags and `--help` from
 * it (cli/options.ts), the README's settings table documents it (test/docs.test.ts compares them),
 * and `resolveConfig` applies it: flag, then env, then default; a bad value throws a ConfigError
 * naming the setting, an unknown key one with a "did you mean", and the result is frozen.
 */
import { ConfigError } from './errors.js';
import { parseRateLimits, type RateLimit } from './flow.js';
import { ATTEMPT_HISTORY_DEFAULT } from './task.js';
import { parseTokens, type ApiToken } from './tokens.js';

export const ROLES = ['all', 'api', 'worker'] as const;
export type Role = (typeof ROLES)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const SYNC_MODES = ['full', 'normal'] as const;
export type SyncMode = (typeof SYNC_MODES)[number];

/** What a setting can be given as: a flag's or variable's text, or a value from code. */
type Raw = string | number | boolean;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `30m`, `45s`, `500ms` or a bare number of milliseconds; null when not a duration. */
export function parseDuration(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) return null;
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? 'ms'] as number));
}

/** How a setting's raw value becomes its value. */
export interface Kind<T> {
  /** What `--help` shows after the flag; empty for a switch. */
  readonly placeholder: '' | '<n>' | '<value>';
  /** The value of `raw`; otherwise a ConfigError whose message starts with `name`. */
  parse(raw: Raw, name: string): T;
}

/** A whole number in min..max. */
function int(min: number, max: number): Kind<number> {
  return {
    placeholder: '<n>',
    parse(raw, name) {
      const text = String(raw).trim();
      if (!/^-?\d+$/.test(text)) throw new ConfigError(`${name}: expected a whole number, got "${raw}"`);
      const n = Number(text);
      if (n < min || n > max) throw new ConfigError(`${name}: ${n} is out of range ${min}..${max}`);
      return n;
    },
  };
}

/** One of `values`, case-insensitive. */
function oneOf<V extends string>(values: readonly V[]): Kind<V> {
  return {
    placeholder: '<value>',
    parse(raw, name) {
      const text = String(raw).trim().toLowerCase();
      const value = values.find((v) => v === text);
      if (value === undefined) throw new ConfigError(`${name}: "${raw}" is not one of ${values.join(', ')}`);
      return value;
    },
  };
}

/** A switch: the bare flag, or true/false, 1/0, yes/no, on/off. */
const bool: Kind<boolean> = {
  placeholder: '',
  parse(raw, name) {
    if (typeof raw === 'boolean') return raw;
    const text = raw.toString().trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(text)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(text)) return false;
    throw new ConfigError(`${name}: expected true or false, got "${raw}"`);
  },
};

/** A duration (see parseDuration), in milliseconds. */
const duration: Kind<number> = {
  placeholder: '<value>',
  parse(raw, name) {
    const ms = parseDuration(String(raw));
    if (ms === null)
      throw new ConfigError(`${name}: expected a duration like 500ms, 30s, 15m, 12h or 7d, got "${raw}"`);
    return ms;
  },
};

/** Per-action rate limits, `action=perSecond[:burst],...` (core/flow.ts). */
const rateLimits: Kind<Map<string, RateLimit>> = {
  placeholder: '<value>',
  parse: (raw, name) => parseRateLimits(String(raw), name),
};

/** Scoped tokens, `NAME:SCOPE[,SCOPE...]:SECRET` entries (core/tokens.ts). */
const tokenList: Kind<ApiToken[]> = {
  placeholder: '<value>',
  parse: (raw, name) => parseTokens(String(raw), name),
};

/** Any text but an empty one. */
const text: Kind<string> = {
  placeholder: '<value>',
  parse(raw, name) {
    const value = String(raw);
    if (value.trim() === '') throw new ConfigError(`${name}: must not be empty`);
    return value;
  },
};

export interface Setting<T> {
  readonly flag: `--${string}`;
  /** Read in this order; the first one set wins. */
  readonly env: readonly string[];
  /** As `--help` and the README show it; undefined when the setting is off unless given. */
  readonly default: Raw | undefined;
  /** The default, parsed (undefined for an optional setting). */
  readonly fallback: T;
  readonly kind: Kind<T>;
  readonly description: string;
  /** 'client': a setting of the producer commands, not of `taskq run`. */
  readonly scope: 'service' | 'client';
}

interface SettingInput<T> {
  flag: `--${string}`;
  env: readonly string[];
  kind: Kind<T>;
  description: string;
  scope?: 'client';
}

function setting<T>(spec: SettingInput<T> & { default: Raw }): Setting<T> {
  const fallback = spec.kind.parse(spec.default, `${spec.flag} (default)`);
  return { scope: 'service', ...spec, fallback };
}

/** A setting without a default: absent means off. */
function optional<T>(spec: SettingInput<T>): Setting<T | undefined> {
  return { scope: 'service', ...spec, default: undefined, fallback: undefined };
}

// The defaults, named for code that needs one without a resolved config. A duration's default is
// its text, as documented.
export const DB_DEFAULT = './data/tasks.db';
export const PORT_DEFAULT = 8080;
export const HOST_DEFAULT = '0.0.0.0';
export const ROLE_DEFAULT = 'all' satisfies Role;
export const CONCURRENCY_DEFAULT = 2;
export const PREFETCH_DEFAULT = 5;
export const LOG_LEVEL_DEFAULT = 'info' satisfies LogLevel;
export const STRICT_ACTIONS_DEFAULT = false;
export const BODY_LIMIT_DEFAULT = 1_048_576;
export const MAX_ATTEMPTS_DEFAULT = 3;
export const TASK_TIMEOUT_MS_DEFAULT = 60_000;
export const LEASE_MS_DEFAULT = 10_000;
export const POLL_MS_DEFAULT = 1000;
export const ACK_DELAY_MS_DEFAULT = 10;
export const BACKOFF_MS_DEFAULT = 1000;
export const BACKOFF_MAX_MS_DEFAULT = 3_600_000;
export const SHUTDOWN_GRACE_MS_DEFAULT = 10_000;
export const SYNC_DEFAULT = 'full' satisfies SyncMode;
export const PG_POOL_SIZE_DEFAULT = 10;
export const IDEMPOTENCY_WINDOW_MS_DEFAULT = 86_400_000;
export const URL_DEFAULT = 'http://localhost:8080';
export const RETENTION_COMPLETED_DEFAULT = '7d';
export const RETENTION_FAILED_DEFAULT = '30d';
export const AUDIT_RETENTION_DEFAULT = '90d';
export const MAX_EVENT_STREAMS_DEFAULT = 1000;
export const KEEP_ALIVE_TIMEOUT_MS_DEFAULT = 72_000;
export const HEADERS_TIMEOUT_MS_DEFAULT = 20_000;
export const REQUEST_TIMEOUT_MS_DEFAULT = 60_000;
export const MAX_CONNECTIONS_DEFAULT = 10_000;

export const SETTINGS = Object.freeze({
  db: setting({
    flag: '--db',
    env: ['TASKQ_DB'],
    default: DB_DEFAULT,
    kind: text,
    description: 'SQLite file path (parent folders are created) or a postgres:// URL',
  }),
  port: setting({
    flag: '--port',
    env: ['PORT', 'TASKQ_PORT'],
    default: PORT_DEFAULT,
    kind: int(0, 65_535),
    description: 'HTTP port (0 picks a free one)',
  }),
  host: setting({
    flag: '--host',
    env: ['HOST', 'TASKQ_HOST'],
    default: HOST_DEFAULT,
    kind: text,
    description: 'address to listen on; the default is every IPv4 interface',
  }),
  role: setting({
    flag: '--role',
    env: ['TASKQ_ROLE'],
    default: ROLE_DEFAULT,
    kind: oneOf(ROLES),
    description: 'all: API and workers; api: only the API; worker: only workers (and /healthz)',
  }),
  concurrency: setting({
    flag: '--concurrency',
    env: ['TASKQ_CONCURRENCY'],
    default: CONCURRENCY_DEFAULT,
    kind: int(1, 1000),
    description: 'handlers running at once in this process',
  }),
  prefetch: setting({
    flag: '--prefetch',
    env: ['TASKQ_PREFETCH'],
    default: PREFETCH_DEFAULT,
    kind: int(0, 10_000),
    description: 'claimed tasks waiting in memory beyond those running',
  }),
  logLevel: setting({
    flag: '--log-level',
    env: ['TASKQ_LOG_LEVEL', 'LOG_LEVEL'],
    default: LOG_LEVEL_DEFAULT,
    kind: oneOf(LOG_LEVELS),
    description: 'pino log level; request logs are at debug',
  }),
  handlers: optional({
    flag: '--handlers',
    env: ['TASKQ_HANDLERS'],
    kind: text,
    description: 'folder of handler modules (.js, .mjs, .ts); one action per file',
  }),
  strictActions: setting({
    flag: '--strict-actions',
    env: ['TASKQ_STRICT_ACTIONS'],
    default: STRICT_ACTIONS_DEFAULT,
    kind: bool,
    description: 'refuse unknown actions at POST (400) instead of the {output:"processed"} fallback',
  }),
  bodyLimit: setting({
    flag: '--body-limit',
    env: ['TASKQ_BODY_LIMIT'],
    default: BODY_LIMIT_DEFAULT,
    kind: int(1024, 1_073_741_824),
    description: 'largest request body in bytes (413 above)',
  }),
  maxAttempts: setting({
    flag: '--max-attempts',
    env: ['TASKQ_MAX_ATTEMPTS'],
    default: MAX_ATTEMPTS_DEFAULT,
    kind: int(1, 100),
    description: 'default max_attempts of a task',
  }),
  attemptHistory: setting({
    flag: '--attempt-history',
    env: ['TASKQ_ATTEMPT_HISTORY'],
    default: ATTEMPT_HISTORY_DEFAULT,
    kind: int(1, 1000),
    description: "attempts each task's attempt_history keeps (the oldest are dropped)",
  }),
  taskTimeoutMs: setting({
    flag: '--task-timeout-ms',
    env: ['TASKQ_TASK_TIMEOUT_MS'],
    default: TASK_TIMEOUT_MS_DEFAULT,
    kind: int(1, 86_400_000),
    description: 'a handler running longer is aborted and nacked',
  }),
  leaseMs: setting({
    flag: '--lease-ms',
    env: ['TASKQ_LEASE_MS'],
    default: LEASE_MS_DEFAULT,
    kind: int(200, 3_600_000),
    description: 'lease of a claimed task; renewed every third of it, rescued when expired',
  }),
  pollMs: setting({
    flag: '--poll-ms',
    env: ['TASKQ_POLL_MS'],
    default: POLL_MS_DEFAULT,
    kind: int(10, 600_000),
    description:
      'idle workers look for work this often (new tasks in this process, or NOTIFY, wake them at once)',
  }),
  ackDelayMs: setting({
    flag: '--ack-delay-ms',
    env: ['TASKQ_ACK_DELAY_MS'],
    default: ACK_DELAY_MS_DEFAULT,
    kind: int(0, 10_000),
    description:
      'results are written in batches, each this long after its first result (at once when full): longer means fewer database commits and later results',
  }),
  backoffMs: setting({
    flag: '--backoff-ms',
    env: ['TASKQ_BACKOFF_MS'],
    default: BACKOFF_MS_DEFAULT,
    kind: int(0, 86_400_000),
    description: 'base of the exponential retry backoff',
  }),
  backoffMaxMs: setting({
    flag: '--backoff-max-ms',
    env: ['TASKQ_BACKOFF_MAX_MS'],
    default: BACKOFF_MAX_MS_DEFAULT,
    kind: int(0, 604_800_000),
    description: 'longest retry backoff',
  }),
  shutdownGraceMs: setting({
    flag: '--shutdown-grace-ms',
    env: ['TASKQ_SHUTDOWN_GRACE_MS'],
    default: SHUTDOWN_GRACE_MS_DEFAULT,
    kind: int(0, 3_600_000),
    description: 'on SIGTERM, how long running handlers may take to finish',
  }),
  sync: setting({
    flag: '--sync',
    env: ['TASKQ_SYNC'],
    default: SYNC_DEFAULT,
    kind: oneOf(SYNC_MODES),
    description:
      'SQLite durability: full fsyncs every commit a client relies on (accept, result); normal may lose the last commits on power loss, never on a crash',
  }),
  pgPoolSize: setting({
    flag: '--pg-pool-size',
    env: ['TASKQ_PG_POOL_SIZE'],
    default: PG_POOL_SIZE_DEFAULT,
    kind: int(2, 1000),
    description: 'PostgreSQL connections per process',
  }),
  idempotencyWindowMs: setting({
    flag: '--idempotency-window-ms',
    env: ['TASKQ_IDEMPOTENCY_WINDOW_MS'],
    default: IDEMPOTENCY_WINDOW_MS_DEFAULT,
    kind: int(1000, 31_536_000_000),
    description: 'how long an Idempotency-Key (or unique_key) answers with the original task',
  }),
  rateLimits: optional({
    flag: '--rate-limit',
    env: ['TASKQ_RATE_LIMITS'],
    kind: rateLimits,
    description:
      "per-action rate limits across all workers, action=perSecond[:burst], comma-separated (e.g. uppercase=20,resize=0.5:5); wins over a handler module's rateLimit",
  }),
  apiToken: optional({
    flag: '--api-token',
    env: ['TASKQ_API_TOKEN'],
    kind: text,
    description:
      'an admin token named "api-token": when any token is set, every route but /healthz needs Authorization: Bearer <token>',
  }),
  tokens: optional({
    flag: '--tokens',
    env: ['TASKQ_TOKENS'],
    kind: tokenList,
    description:
      'scoped tokens, NAME:SCOPE[,SCOPE...]:SECRET separated by spaces, newlines or ";"; scopes read, enqueue, operate, admin (docs/security.md)',
  }),
  tokensFile: optional({
    flag: '--tokens-file',
    env: ['TASKQ_TOKENS_FILE'],
    kind: text,
    description:
      'file of scoped tokens, one NAME:SCOPE[,SCOPE...]:SECRET per line, # comments; read at start',
  }),
  auditRetentionMs: setting({
    flag: '--audit-retention',
    env: ['TASKQ_AUDIT_RETENTION'],
    default: AUDIT_RETENTION_DEFAULT,
    kind: duration,
    description: 'audit log entries older than this are pruned in the background (0 keeps them)',
  }),
  url: setting({
    flag: '--url',
    env: ['TASKQ_URL'],
    default: URL_DEFAULT,
    kind: text,
    description: 'where the producer commands (enqueue, tasks, stats) find a running service',
    scope: 'client',
  }),
  token: optional({
    flag: '--token',
    env: ['TASKQ_TOKEN', 'TASKQ_API_TOKEN'],
    kind: text,
    description: "the producer commands' API token, sent as Authorization: Bearer <token>",
    scope: 'client',
  }),
  retentionCompletedMs: setting({
    flag: '--retention-completed',
    env: ['TASKQ_RETENTION_COMPLETED'],
    default: RETENTION_COMPLETED_DEFAULT,
    kind: duration,
    description: 'completed tasks older than this are pruned in the background (e.g. 7d, 12h; 0 keeps them)',
  }),
  retentionFailedMs: setting({
    flag: '--retention-failed',
    env: ['TASKQ_RETENTION_FAILED'],
    default: RETENTION_FAILED_DEFAULT,
    kind: duration,
    description: 'failed and cancelled tasks older than this are pruned in the background (0 keeps them)',
  }),
  schedules: optional({
    flag: '--schedules',
    env: ['TASKQ_SCHEDULES'],
    kind: text,
    description: 'JSON file of recurring tasks: [{name, cron, timezone?, action, data?}]',
  }),
  maxEventStreams: setting({
    flag: '--max-event-streams',
    env: ['TASKQ_MAX_EVENT_STREAMS'],
    default: MAX_EVENT_STREAMS_DEFAULT,
    kind: int(0, 1_000_000),
    description:
      'event streams (GET /events/stats, /tasks/:id/events) open at once in this process; more answer 503',
  }),
  keepAliveTimeoutMs: setting({
    flag: '--keep-alive-timeout-ms',
    env: ['TASKQ_KEEP_ALIVE_TIMEOUT_MS'],
    default: KEEP_ALIVE_TIMEOUT_MS_DEFAULT,
    kind: int(1000, 3_600_000),
    description:
      "an idle keep-alive connection is closed after this long; keep it above a load balancer's idle timeout",
  }),
  headersTimeoutMs: setting({
    flag: '--headers-timeout-ms',
    env: ['TASKQ_HEADERS_TIMEOUT_MS'],
    default: HEADERS_TIMEOUT_MS_DEFAULT,
    kind: int(100, 3_600_000),
    description:
      'a connection that has not sent a whole request line and headers within this gets 408 and is closed',
  }),
  requestTimeoutMs: setting({
    flag: '--request-timeout-ms',
    env: ['TASKQ_REQUEST_TIMEOUT_MS'],
    default: REQUEST_TIMEOUT_MS_DEFAULT,
    kind: int(0, 3_600_000),
    description: 'a request whose body has not arrived within this gets 408 and is closed (0: no limit)',
  }),
  maxConnections: setting({
    flag: '--max-connections',
    env: ['TASKQ_MAX_CONNECTIONS'],
    default: MAX_CONNECTIONS_DEFAULT,
    kind: int(0, 1_000_000),
    description:
      'open connections per process; more are closed as they arrive (0: no limit; keep below ulimit -n)',
  }),
});

export type SettingKey = keyof typeof SETTINGS;
type ValueOf<S> = S extends Setting<infer T> ? T : never;
/** The resolved settings, one property per row of SETTINGS. */
export type Config = { -readonly [K in SettingKey]: ValueOf<(typeof SETTINGS)[K]> };

/**
 * SETTINGS seen through Config. Indexing this mapped type with a generic key gives
 * `Setting<Config[K]>`, so resolveSetting's result type-checks per key.
 */
const TABLE: { readonly [K in SettingKey]: Setting<Config[K]> } = SETTINGS;

function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SETTINGS, key);
}

/** Every setting key, in table order. */
export const SETTING_KEYS: readonly SettingKey[] = Object.keys(SETTINGS).filter(isSettingKey);

export type ConfigInput = Partial<Record<SettingKey, Raw | undefined>>;

/**
 * Edit distance with adjacent transpositions (optimal string alignment), so `concurency`,
 * `cocnurrency` and `concurrencyy` are each one edit from `concurrency`.
 */
export function editDistance(a: string, b: string): number {
  // d[i][j]: edits turning the first i characters of a into the first j of b.
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        row[j] = Math.min(at(i, j), at(i - 2, j - 2) + 1);
    }
  }
  return at(a.length, b.length);
}

/**
 * The candidate closest to `name` (ignoring case), when it is near enough to be a typo: at most
 * one edit for names up to 5 characters, two beyond. Ties go to the earlier candidate.
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const allowed = name.length <= 5 ? 1 : 2;
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance <= allowed && (best === undefined || distance < best.distance))
      best = { candidate, distance };
  }
  return best?.candidate;
}

/** The `unknown <what> "name"` message, with a suggestion when one is close. */
export function unknownName(what: string, name: string, candidates: readonly string[]): string {
  const hint = closest(name, candidates);
  return `unknown ${what} "${name}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`;
}

function resolveSetting<K extends SettingKey>(key: K, input: ConfigInput, env: NodeJS.ProcessEnv): Config[K] {
  const spec = TABLE[key];
  const given = input[key];
  if (given !== undefined) return spec.kind.parse(given, `${spec.flag} (flag)`);
  for (const name of spec.env) {
    const value = env[name];
    if (value !== undefined) return spec.kind.parse(value, `${spec.flag} (${name})`);
  }
  return spec.fallback;
}

function resolveInto<K extends SettingKey>(
  out: Partial<Config>,
  key: K,
  input: ConfigInput,
  env: NodeJS.ProcessEnv,
): void {
  out[key] = resolveSetting(key, input, env);
}

function isComplete(config: Partial<Config>): config is Config {
  return SETTING_KEYS.every((key) => key in config);
}

/**
 * Resolves settings: explicit input (CLI flags or code) wins, then the environment, then defaults.
 * Unknown input keys are a programming error and rejected with a suggestion.
 */
export function resolveConfig(
  input: ConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): Readonly<Config> {
  for (const key of Object.keys(input)) {
    if (!isSettingKey(key)) throw new ConfigError(unknownName('setting', key, SETTING_KEYS));
  }
  const config: Partial<Config> = {};
  for (const key of SETTING_KEYS) resolveInto(config, key, input, env);
  if (!isComplete(config)) throw new Error('resolveConfig: a setting was left out'); // unreachable
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
