/**
 * Nodes: every taskq process (api, worker or both) registers itself and heartbeats, so an
 * operator can see what runs where (GET /nodes, the dashboard's nodes view, `taskq nodes`).
 *
 * Policy:
 * - A node's id is its lease owner: a running task's `lease_owner` names the node running it.
 * - A heartbeat is one upsert of the node's row (`heartbeatNode`) carrying what it runs now. On a
 *   worker node it rides on the lease keeper's timer (every `leaseMs / 3`, sent alongside the lease
 *   renewal, not after it), so a worker has no timer of its own for it; an API-only node runs the
 *   same period on its own timer. Never on the claim/ack path: its cost is one statement per node
 *   per period, whatever the number of tasks.
 * - Live: heard of within NODE_GONE_AFTER_BEATS heartbeat periods (its own period, stored with
 *   it) and not stopped. Gone: stopped gracefully, or silent for longer. Gone nodes stay listed for
 *   NODE_KEEP_MS; every heartbeat deletes rows older than that, so the table stays small and
 *   listing it whole is cheap.
 * - A backlog (queued tasks) with no live worker node is reported as a warning: nothing will run
 *   those tasks until a worker starts.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { NodeInfo, NodeRecord, QueueDriver } from '../drivers/driver.js';

export type { NodeInfo, NodeRecord };

/** Task ids a node reports at most (its `running` count is exact). */
export const NODE_TASKS_MAX = 100;
/** Heartbeat periods a node may miss before it is gone. */
export const NODE_GONE_AFTER_BEATS = 3;
/** How long gone nodes stay listed (and their rows kept). */
export const NODE_KEEP_MS = 3_600_000;

/** A fresh node id: host, pid and a random suffix (a restarted process on the same pid differs). */
export function newNodeId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** What the node runs now: the worker pool reports it; an API-only node runs nothing. */
export interface NodeActivity {
  running: number;
  buffered: number;
  tasks: string[];
}

export interface NodeRegistryOptions {
  driver: QueueDriver;
  info: Omit<NodeInfo, 'running' | 'buffered' | 'tasks'>;
  activity?: () => NodeActivity;
  /** The time written as the heartbeat; `Date.now` unless a test injects a clock. */
  now?: () => number;
  /** Told of a failed heartbeat (the next one tries again). */
  onError?: (err: unknown) => void;
}

/** This process's node row: registered at start, refreshed by every heartbeat, marked stopped at stop. */
export class NodeRegistry {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The heartbeat in flight: stop waits for it, so a late upsert cannot undo the stop. */
  private inflight: Promise<void> = Promise.resolve();

  constructor(private readonly options: NodeRegistryOptions) {}

  get id(): string {
    return this.options.info.id;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** One heartbeat now (the timer or the lease keeper calls it; so can a test). Never throws. */
  beat(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const next = this.inflight.then(() => this.send());
    this.inflight = next;
    return next;
  }

  private async send(): Promise<void> {
    if (this.stopped) return;
    const activity = this.options.activity?.() ?? { running: 0, buffered: 0, tasks: [] };
    const now = this.now();
    try {
      await this.options.driver.heartbeatNode({
        node: { ...this.options.info, ...activity, tasks: activity.tasks.slice(0, NODE_TASKS_MAX) },
        now,
        pruneBefore: now - NODE_KEEP_MS,
      });
    } catch (err) {
      this.options.onError?.(err);
    }
  }

  /**
   * Registers the node; with `ownTimer` it also heartbeats every `heartbeatMs` (an API-only node;
   * a worker node's lease keeper calls `beat` instead).
   */
  async start({ ownTimer }: { ownTimer: boolean }): Promise<void> {
    await this.beat();
    if (ownTimer && !this.timer && !this.stopped) {
      this.timer = setInterval(() => void this.beat(), this.options.info.heartbeatMs);
      this.timer.unref();
    }
  }

  /** Marks the node stopped, so it is listed as gone at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inflight;
    try {
      await this.options.driver.stopNode({ id: this.id, now: this.now() });
    } catch (err) {
      this.options.onError?.(err); // it will be listed gone once its heartbeats are missed
    }
  }
}

/** A node as listed: its row, and whether it is live. */
export interface NodeStatus extends NodeRecord {
  live: boolean;
}

/** Set when tasks wait and no live node runs workers. */
export interface NodesWarning {
  code: 'no_live_worker';
  message: string;
  queued: number;
}

export interface NodesReport {
  nodes: NodeStatus[];
  warning: NodesWarning | null;
}

/** Live while heard of within NODE_GONE_AFTER_BEATS of its own periods, and not stopped. */
export function isLive(node: NodeRecord, now: number): boolean {
  return node.stoppedAt === null && now - node.heartbeatAt <= NODE_GONE_AFTER_BEATS * node.heartbeatMs;
}

/** Live nodes and those gone within NODE_KEEP_MS, with the no-worker warning. */
export async function nodesReport(driver: QueueDriver, now: number): Promise<NodesReport> {
  const [records, counts] = await Promise.all([
    driver.listNodes({ since: now - NODE_KEEP_MS }),
    driver.countTasks(),
  ]);
  const nodes = records.map((n) => ({ ...n, live: isLive(n, now) }));
  const queued = counts.byStatus.queued;
  const workers = nodes.filter((n) => n.live && n.role !== 'api').length;
  const warning: NodesWarning | null =
    queued > 0 && workers === 0
      ? {
          code: 'no_live_worker',
          message: `${queued} task${queued === 1 ? ' is' : 's are'} queued and no live worker node is running: they wait until one starts`,
          queued,
        }
      : null;
  return { nodes, warning };
}
