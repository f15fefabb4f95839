/**
 * What the API shows of the queue's records: each view's type is its schema's (schemas.ts), and
 * each record maps to it here, in one place. Times become ISO 8601 strings.
 */
import type { TaskRecord } from '../core/task.js';
import type { TaskGraph } from '../queue/queue.js';
import type { QueueStats } from '../queue/stats.js';
import type { Stats, TaskView } from './schemas.js';

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
  };
}

/** The task with its graph (GET /tasks/:id). */
export function toTaskGraphView(task: TaskRecord, graph: TaskGraph): TaskView {
  return {
    ...toTaskView(task),
    depends_on: graph.dependsOn,
    dependents: graph.dependents,
    children: graph.children,
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
