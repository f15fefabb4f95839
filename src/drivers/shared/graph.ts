/**
 * What both drivers decide alike about dependencies (docs/workflows.md), given the rows they
 * read: how a new task with dependencies starts, and how a wait for children ends. The drivers
 * read and write; this only decides.
 *
 * Why no cycle can form through `depends_on`: a new task may depend only on tasks that exist
 * already (or on earlier tasks of its own batch), so every such edge points from a newer task
 * to an older one, and nothing points at a task while it is being inserted. The one edge that
 * points the other way is a parent waiting for its children; the wait is refused (the parent
 * fails) when one of those children already depends on the parent (`dependentAmong`).
 */
import { QueueError } from '../../core/errors.js';
import {
  dependencyError,
  isFinished,
  type DependencyFailurePolicy,
  type DependencyRef,
  type NewTask,
  type TaskStatus,
} from '../../core/task.js';
import type { GraphNode } from '../driver.js';

/** A dependency as read (and locked) by the driver. */
export interface DependencyRow {
  seq: number;
  id: string;
  status: TaskStatus;
  error: string | null;
}

/** How a task that depends on `deps` is inserted, and its edges. */
export interface GraphStart {
  status: TaskStatus;
  pendingDeps: number;
  error: string | null;
  processedAt: number | null;
  edges: { dep: number; met: boolean }[];
}

/**
 * Settled dependencies do not count: a completed one is met, a failed or cancelled one fails
 * (or cancels) the new task at once unless it runs on dependency failure.
 */
export function graphStart(
  deps: readonly DependencyRow[],
  policy: DependencyFailurePolicy,
  now: number,
): GraphStart {
  let failure: DependencyRow | undefined;
  let pendingDeps = 0;
  const edges: GraphStart['edges'] = [];
  for (const d of deps) {
    const met = isFinished(d.status);
    if (!met) pendingDeps++;
    else if (d.status !== 'completed' && policy === 'fail') failure ??= d;
    edges.push({ dep: d.seq, met });
  }
  if (failure !== undefined) {
    return {
      status: failure.status === 'cancelled' ? 'cancelled' : 'failed',
      pendingDeps,
      error: dependencyError(failure),
      processedAt: now,
      edges,
    };
  }
  return {
    status: pendingDeps > 0 ? 'blocked' : 'queued',
    pendingDeps,
    error: null,
    processedAt: null,
    edges,
  };
}

/**
 * The seqs `task.dependsOn` names, without repeats, given how the driver finds an id and the
 * seqs of the earlier tasks of this call. An unknown id or a reference to a later task is
 * TQ_ERR_VALIDATION, which the API answers 400.
 */
export function dependencySeqs(
  task: NewTask,
  index: number,
  earlier: readonly number[],
  seqOfId: (id: string) => number | undefined,
): number[] {
  const seqs = (task.dependsOn ?? []).map((ref: DependencyRef) => {
    if ('index' in ref) {
      const seq = ref.index < index ? earlier[ref.index] : undefined;
      if (seq === undefined)
        throw new QueueError(
          'TQ_ERR_VALIDATION',
          `depends_on: item ${ref.index} is not an earlier task of this batch (task ${index})`,
        );
      return seq;
    }
    const seq = seqOfId(ref.id.toLowerCase());
    if (seq === undefined) throw new QueueError('TQ_ERR_VALIDATION', `depends_on: task ${ref.id} not found`);
    return seq;
  });
  return [...new Set(seqs)];
}

/** The error of a parent whose wait would close a cycle through its child `seq`. */
export function cycleError(children: readonly DependencyRow[], seq: number): string {
  const id = children.find((c) => c.seq === seq)?.id ?? String(seq);
  return `waitForChildren: child ${id} depends on this task, so waiting for it would never end`;
}

/**
 * How many there are of a list whose first `limit` rows `listed` are: the length of a list that
 * is not full, else `count()` (which counts up to the cap).
 */
export async function graphCount(
  listed: readonly unknown[],
  limit: number,
  count: () => Promise<number>,
): Promise<number> {
  return listed.length < limit ? listed.length : count();
}

/** A graph node as both drivers' statements select it. */
export interface GraphNodeRow {
  id: string;
  action: string;
  status: TaskStatus;
  pending_deps: number;
}

export function toGraphNode(row: GraphNodeRow): GraphNode {
  return { id: row.id, action: row.action, status: row.status, pendingDeps: Number(row.pending_deps) };
}
