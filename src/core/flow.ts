/**
 * Flow control (docs/flow-control.md): per-action rate limits and per-key concurrency caps.
 *
 * - A rate limit is a token bucket per action whose state lives in the database, so every process
 *   on a SQLite file and every node on PostgreSQL draws from the same bucket. It holds at most
 *   `burst` tokens (a new bucket starts full) and gains `perSecond` tokens a second; each task
 *   claimed takes one. So in any window of T seconds at most `burst + perSecond * T` tasks of the
 *   action are claimed. The rate is counted at claim, not at handler start.
 * - A concurrency cap per key: at most `concurrencyPerKey` tasks of the action with the same
 *   `concurrency_key` are `running` (claimed, buffered or running) at once, across the cluster.
 *   Tasks without a key are not capped.
 *
 * The limits a process applies are its own handlers' options and its `--rate-limit` setting;
 * every process should be configured alike (a process without the limit claims without it).
 */
import { ConfigError } from './errors.js';

export interface RateLimit {
  /** Tokens gained per second (may be fractional: 0.5 is one task every two seconds). */
  perSecond: number;
  /** Tokens the bucket holds at most: tasks that may be claimed at once after a quiet spell. */
  burst: number;
}

/** What one action's claims are held to. */
export interface ActionLimits {
  action: string;
  rateLimit?: RateLimit;
  concurrencyPerKey?: number;
}

/** Why a claim left ready tasks of an action queued. */
export type LimitReason = 'rate_limit' | 'concurrency_key';

/** A claim held back ready tasks of `action` because of `reason`. */
export interface LimitedClaim {
  action: string;
  reason: LimitReason;
  /** For a rate limit: when the bucket next holds a whole token (epoch ms). */
  retryAt?: number;
}

export const RATE_PER_SECOND_MAX = 1_000_000;
export const BURST_MAX = 1_000_000;
export const CONCURRENCY_PER_KEY_MAX = 1_000_000;

/** The burst when none is given: one task, so the bucket can ever hold a whole token. */
export const BURST_DEFAULT = 1;

/** A checked rate limit; `name` starts every error message. */
export function rateLimitOf(name: string, perSecond: unknown, burst: unknown): RateLimit {
  if (
    typeof perSecond !== 'number' ||
    !Number.isFinite(perSecond) ||
    perSecond <= 0 ||
    perSecond > RATE_PER_SECOND_MAX
  )
    throw new ConfigError(`${name}: perSecond must be a number above 0 and at most ${RATE_PER_SECOND_MAX}`);
  if (burst === undefined) return { perSecond, burst: BURST_DEFAULT };
  if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1 || burst > BURST_MAX)
    throw new ConfigError(`${name}: burst must be a whole number in 1..${BURST_MAX}`);
  return { perSecond, burst };
}

/**
 * The `--rate-limit` setting: `action=perSecond[:burst]`, comma-separated, e.g.
 * `uppercase=20,resize=0.5:5`. An action named twice is refused.
 */
export function parseRateLimits(text: string, name: string): Map<string, RateLimit> {
  const limits = new Map<string, RateLimit>();
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const match = /^([^=\s]+)\s*=\s*([0-9.]+)(?:\s*:\s*(\d+))?$/.exec(item);
    if (!match)
      throw new ConfigError(
        `${name}: "${item}" is not action=perSecond[:burst] (e.g. uppercase=20 or resize=0.5:5)`,
      );
    const action = match[1] as string;
    const burst = match[3];
    if (limits.has(action)) throw new ConfigError(`${name}: action "${action}" is given twice`);
    const where = `${name}: ${action}`;
    limits.set(action, rateLimitOf(where, Number(match[2]), burst === undefined ? undefined : Number(burst)));
  }
  if (limits.size === 0) throw new ConfigError(`${name}: expected action=perSecond[:burst], got "${text}"`);
  return limits;
}

/**
 * The limits of each action: the handler modules' options, with the `--rate-limit` setting
 * winning over a module's `rateLimit` (an operator tunes it without a code change). Only actions
 * with a limit are listed, sorted by name (the PostgreSQL claim takes its locks in this order).
 */
export function actionLimitsOf(
  handlers: readonly {
    action: string;
    rateLimit?: { perSecond: number; burst?: number };
    concurrencyPerKey?: number;
  }[],
  rateLimits: ReadonlyMap<string, RateLimit> = new Map(),
): ActionLimits[] {
  const byAction = new Map<string, ActionLimits>();
  for (const h of handlers) {
    if (h.rateLimit === undefined && h.concurrencyPerKey === undefined) continue;
    // A definition built in code (not loaded from a module) may leave the burst out.
    const rateLimit = h.rateLimit && {
      perSecond: h.rateLimit.perSecond,
      burst: h.rateLimit.burst ?? BURST_DEFAULT,
    };
    byAction.set(h.action, { action: h.action, rateLimit, concurrencyPerKey: h.concurrencyPerKey });
  }
  for (const [action, rateLimit] of rateLimits) {
    byAction.set(action, { ...byAction.get(action), action, rateLimit });
  }
  return [...byAction.values()].sort((a, b) => (a.action < b.action ? -1 : a.action > b.action ? 1 : 0));
}
