/**
 * The decisions of a claim under flow-control limits (core/flow.ts), written once for both
 * drivers; each driver runs the statements (sqlite-driver.ts, postgres-driver.ts `claimLimited`)
 * in one transaction and feeds their rows in here:
 *
 * 1. Unlimited candidates: the head of the queue in claim order, every limited action left out.
 * 2. Per limited action: its bucket's tokens cap how many of its tasks may be claimed
 *    (`allowance`). Its queued tasks are read per key: the tasks without a key as one group, and
 *    a window of keys from a per-action cursor that moves on by the keys it read, so over
 *    successive claims every key gets its turn however many there are. A capped key gives at most
 *    `cap - running` tasks; the groups are taken round-robin (first task of each key, then the
 *    second, ...), so one key's flood cannot take the others' turns.
 * 3. The chosen candidates are merged in claim order with the unlimited ones, and the first
 *    `limit` are claimed. Each rate-limited action spends one token per task claimed.
 */
import type { ActionLimits, LimitedClaim, RateLimit } from '../../core/flow.js';

/** A queued task a claim may take, as the candidate statements return it. */
export interface Candidate {
  seq: number;
  action: string;
  concurrency_key: string | null;
  priority: number;
  run_at: number;
}

/** Keys read per action and claim, at least; more when the claim has room for more. */
const KEY_WINDOW_MIN = 16;
const KEY_WINDOW_MAX = 256;
/** Guards whole-token arithmetic against float error (0.1 * 3 tokens is 0.30000000000000004). */
const EPSILON = 1e-9;

const claimOrder = (a: Candidate, b: Candidate): number =>
  b.priority - a.priority || a.run_at - b.run_at || a.seq - b.seq;

/** The first task of each group, then the second of each, and so on. */
function roundRobin<T>(groups: T[][]): T[] {
  const out: T[] = [];
  for (let i = 0; groups.some((g) => i < g.length); i++) {
    for (const g of groups) if (i < g.length) out.push(g[i] as T);
  }
  return out;
}

interface ActionState {
  limits: ActionLimits;
  allowance: number;
  tokens: number | null;
  groups: Candidate[][];
  heldByKey: boolean;
  /** The keys read this claim, and where the cursor goes if none of them is served. */
  window: string[];
  nextCursor: string;
}

/**
 * Where each action's key window starts next; one per driver, so each process rotates on its
 * own (rotation is about fairness, and any start is correct).
 */
export class KeyCursors {
  private readonly after = new Map<string, string>();
  get(action: string): string {
    return this.after.get(action) ?? '';
  }
  set(action: string, key: string): void {
    this.after.set(action, key);
  }
}

export class FlowClaim {
  /**
   * The limited actions a claim must serve under its limits (those not excluded). When none of
   * them has a queued task, the driver makes the plain claim instead, leaving them out, so a
   * process whose limited actions are idle pays one index seek per limited action and no more.
   */
  static limitedActions(params: {
    limits?: readonly ActionLimits[];
    excludeActions?: readonly string[];
  }): string[] {
    const skip = new Set(params.excludeActions ?? []);
    return (params.limits ?? []).map((l) => l.action).filter((a) => !skip.has(a));
  }

  /**
   * What the plain claim leaves out: the caller's exclusions and the limited actions (none of which
   * had a queued task when checked; one queued since waits for the next claim, under its limits).
   */
  static plainExclusions(
    excludeActions: readonly string[] | undefined,
    limited: readonly string[],
  ): string[] {
    return [...new Set([...(excludeActions ?? []), ...limited])];
  }

  /** Actions the unlimited part leaves out: the limited ones and those the caller excluded. */
  readonly excluded: string[];
  /** The limited actions this claim serves, sorted by name (the order locks are taken in). */
  readonly actions: ActionLimits[];
  /** How many keys to read per action. */
  readonly keyWindow: number;
  private readonly state = new Map<string, ActionState>();
  private unlimited: Candidate[] = [];

  constructor(
    limits: readonly ActionLimits[],
    excludeActions: readonly string[] | undefined,
    readonly limit: number,
    readonly now: number,
    private readonly cursors: KeyCursors,
  ) {
    const skip = new Set(excludeActions ?? []);
    this.actions = limits
      .filter((l) => !skip.has(l.action))
      .sort((a, b) => (a.action < b.action ? -1 : a.action > b.action ? 1 : 0));
    this.excluded = [...new Set([...skip, ...limits.map((l) => l.action)])];
    this.keyWindow = Math.min(KEY_WINDOW_MAX, Math.max(KEY_WINDOW_MIN, limit));
    for (const l of this.actions) {
      const fresh = {
        allowance: limit,
        tokens: null,
        groups: [],
        heldByKey: false,
        window: [],
        nextCursor: '',
      };
      this.state.set(l.action, { limits: l, ...fresh });
    }
  }

  private of(action: string): ActionState {
    return this.state.get(action) as ActionState;
  }

  addUnlimited(candidates: Candidate[]): void {
    this.unlimited = candidates;
  }

  /** The action's bucket holds `tokens` after its refill: whole ones may be spent. */
  refilled(action: string, tokens: number): void {
    const s = this.of(action);
    s.tokens = tokens;
    s.allowance = Math.min(this.limit, Math.floor(tokens + EPSILON));
  }

  /** Where the action's key window starts. */
  cursor(action: string): string {
    return this.cursors.get(action);
  }

  /**
   * The keys to read, given those after the cursor and (when they were fewer than the window)
   * those from the start. The cursor moves (in choose) to the last of them that is served, so
   * the keys read but not served come first next time; past them all if none is.
   */
  keysToRead(action: string, afterCursor: string[], fromStart: string[] = []): string[] {
    const s = this.of(action);
    const start = this.cursors.get(action);
    const wrapped = fromStart.filter((k) => k <= start && !afterCursor.includes(k));
    s.window = [...afterCursor, ...wrapped].slice(0, this.keyWindow);
    // Past the end with nothing wrapped: start from the beginning next time.
    const atEnd = afterCursor.length < this.keyWindow && wrapped.length === 0;
    s.nextCursor = atEnd ? '' : (s.window[s.window.length - 1] ?? '');
    return s.window;
  }

  /** How many tasks to read of one key that has `running` tasks running (one more shows a held-back key). */
  readLimit(action: string, running = 0): number {
    const cap = this.of(action).limits.concurrencyPerKey;
    if (cap === undefined) return this.limit;
    return Math.max(0, Math.min(this.limit, cap - running)) + 1;
  }

  /** The ready tasks of one group (a key, or the tasks without one), in claim order. */
  addGroup(action: string, candidates: Candidate[], running: number | null): void {
    const s = this.of(action);
    const cap = s.limits.concurrencyPerKey;
    if (running === null || cap === undefined) {
      s.groups.push(candidates);
      return;
    }
    const room = Math.max(0, cap - running);
    if (candidates.length > room) s.heldByKey = true;
    s.groups.push(candidates.slice(0, room));
  }

  /** The seqs to claim: every part's candidates, merged in claim order, the first `limit`. */
  choose(): number[] {
    const limited = [...this.state.values()].flatMap((s) => roundRobin(s.groups).slice(0, s.allowance));
    const chosen = [...this.unlimited, ...limited].sort(claimOrder).slice(0, this.limit);
    for (const s of this.state.values()) {
      const served = new Set(
        chosen.filter((c) => c.action === s.limits.action).map((c) => c.concurrency_key),
      );
      const last = s.window.findLastIndex((k) => served.has(k));
      this.cursors.set(s.limits.action, last >= 0 ? (s.window[last] as string) : s.nextCursor);
    }
    return chosen.map((c) => c.seq);
  }

  /** Tokens to spend per rate-limited action, from the actions of the tasks claimed. */
  spending(claimedActions: readonly string[]): { action: string; count: number; rate: RateLimit }[] {
    return [...this.state.values()].flatMap((s) => {
      const rate = s.limits.rateLimit;
      if (!rate) return [];
      const count = claimedActions.filter((a) => a === s.limits.action).length;
      return count > 0 ? [{ action: s.limits.action, count, rate }] : [];
    });
  }

  /** What the limits held back in this claim, from the actions of the tasks claimed. */
  limited(claimedActions: readonly string[]): LimitedClaim[] {
    const out: LimitedClaim[] = [];
    for (const s of this.state.values()) {
      const { action, rateLimit, concurrencyPerKey } = s.limits;
      const ready = s.groups.reduce((n, g) => n + g.length, 0);
      if (rateLimit && s.tokens !== null && s.allowance < this.limit && ready > s.allowance) {
        const left = s.tokens - claimedActions.filter((a) => a === action).length;
        const retryAt = this.now + Math.max(1, Math.ceil(((1 - left) * 1000) / rateLimit.perSecond));
        out.push({ action, reason: 'rate_limit', retryAt });
      }
      if (concurrencyPerKey !== undefined && s.heldByKey) out.push({ action, reason: 'concurrency_key' });
    }
    return out;
  }
}
