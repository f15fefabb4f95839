/**
 * What the API shows of the queue's records: each view's type is its schema's (schemas.ts), and
 * each record maps to it here, in one place. Times become ISO 8601 strings.
 */
import type { AttemptRecord, TaskRecord } from '../core/task.js';
import type { NodesReport } from '../queue/nodes.js';
import type { GraphNode, TaskGraph } from '../queue/queue.js';
import type { QueueStats } from '../queue/stats.js';
import type { OperationRecord } from '../queue/bulk.js';
import type { AttemptView, GraphNodeView, NodeListView, OperationView, Stats, TaskView } from './schemas.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function toTaskView(task: TaskRecord): TaskView {
  return {
    id: task.id,
    action: task.action,
    data: task.data,
    status: task.status,
    result: task.result,
    error: task.error,
    attempts: task.attempts,
    max_attempts: task.maxAttempts,
    priority: task.priority,
    concurrency_key: task.concurrencyKey,
    progress: task.progress,
    progress_message: task.progressMessage,
    run_at: iso(task.runAt),
    created_at: iso(task.createdAt),
    claimed_at: isoOrNull(task.claimedAt),
    started_at: isoOrNull(task.startedAt),
    processed_at: isoOrNull(task.processedAt),
    traceparent: task.traceparent,
    parent_id: task.parentId,
    pending_dependencies: task.pendingDeps,
    on_dependency_failure: task.onDependencyFailure,
    node: task.status === 'running' ? task.leaseOwner : null,
  };
}

function toAttemptView(a: AttemptRecord): AttemptView {
  return {
    attempt: a.attempt,
    node: a.node,
    claimed_at: isoOrNull(a.claimed_at),
    started_at: isoOrNull(a.started_at),
    finished_at: iso(a.finished_at),
    outcome: a.outcome,
    error: a.error,
    stack: a.stack,
  };
}

/** One task read by itself (GET /tasks/:id, its event stream): with its attempt history. */
export function toTaskDetailView(task: TaskRecord): TaskView {
  return { ...toTaskView(task), attempt_history: task.attemptHistory.map(toAttemptView) };
}

/** GET /tasks/:id: the detail view with the task's graph (dependencies, dependents, children). */
export function toTaskGraphView(task: TaskRecord, graph: TaskGraph & { parent: GraphNode | null }): TaskView {
  return {
    ...toTaskDetailView(task),
    depends_on: graph.dependsOn.map(toGraphNodeView),
    dependents: graph.dependents.map(toGraphNodeView),
    children: graph.children.map(toGraphNodeView),
    parent: graph.parent && toGraphNodeView(graph.parent),
    graph_counts: {
      depends_on: graph.counts.dependsOn,
      dependents: graph.counts.dependents,
      children: graph.counts.children,
    },
  };
}

function toGraphNodeView(node: GraphNode): GraphNodeView {
  return { id: node.id, action: node.action, status: node.status, pending_dependencies: node.pendingDeps };
}

export function toNodeListView(report: NodesReport, now: number): NodeListView {
  return {
    nodes: report.nodes.map((n) => ({
      id: n.id,
      host: n.host,
      pid: n.pid,
      role: n.role,
      version: n.version,
      status: n.live ? 'live' : 'gone',
      started_at: iso(n.startedAt),
      last_seen_at: iso(n.stoppedAt ?? n.heartbeatAt),
      stopped_at: isoOrNull(n.stoppedAt),
      heartbeat_ms: n.heartbeatMs,
      concurrency: n.concurrency,
      running: n.running,
      buffered: n.buffered,
      tasks: n.tasks,
    })),
    live: report.nodes.filter((n) => n.live).length,
    warning: report.warning,
    generated_at: iso(now),
  };
}

export function toStatsView(stats: QueueStats): Stats {
  return {
    counts: stats.counts,
    total: stats.total,
    by_action: stats.byAction,
    oldest_queued_age_ms: stats.oldestQueuedAgeMs,
    throughput: stats.throughput.map((p) => ({
      minute: iso(p.minute),
      completed: p.completed,
      failed: p.failed,
    })),
    generated_at: iso(stats.generatedAt),
  };
}

export function toOperationView(op: OperationRecord): OperationView {
  return {
    id: op.id,
    op: op.op,
    filter: op.filter,
    status: op.status,
    matched: op.matched,
    matched_exact: op.matchedExact,
    done: op.done,
    skipped: op.skipped,
    errors: op.errors,
    last_error: op.lastError,
    created_by: op.createdBy,
    created_at: iso(op.createdAt),
    updated_at: iso(op.updatedAt),
    finished_at: isoOrNull(op.finishedAt),
  };
}
