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

/*
 * Retry re-blocks a cascade (docs/workflows.md, "Retrying a failed dependency"). When a task
 * that failed or was cancelled is retried, the dependents its end failed (or cancelled) are
 * blocked again, transitively, in the retry's transaction: status `blocked`, error cleared,
 * pending count recounted from their edges. "Its end failed them" is read from what the cascade
 * wrote: the dependent's status and error are exactly those the cascade gives for that
 * dependency (dependencyError), so a dependent the user retried, cancelled or deleted since, or
 * one that failed on its own, no longer matches and is left alone. A dependent that has another
 * dependency still failed or cancelled stays failed, now with that dependency's error (it would
 * fail again at once). The drivers read and write; these decide.
 */

/** A task as the re-block walk reads it. */
export interface CascadeRow {
  seq: number;
  id: string;
  status: TaskStatus;
  error: string | null;
}

/** Whether the end of `dependency` (as it was) is what failed or cancelled `dependent`. */
export function failedBy(dependent: CascadeRow, dependency: CascadeRow): boolean {
  const status = dependency.status === 'cancelled' ? 'cancelled' : 'failed';
  return (
    (dependency.status === 'failed' || dependency.status === 'cancelled') &&
    dependent.status === status &&
    dependent.error === dependencyError(dependency)
  );
}

/** What a retry of `roots` does to their cascade. */
export interface ReblockPlan {
  /** Dependents blocked again. */
  reblock: number[];
  /** Dependents that stay failed or cancelled, with the error of the dependency that keeps them so. */
  refail: { seq: number; status: TaskStatus; error: string }[];
  /** Edges (task, dep) unmet again: every failed or cancelled dependent of a task no longer finished. */
  unmet: { task: number; dep: number }[];
  /** Tasks whose pending count is recounted from their edges. */
  recount: number[];
}

/**
 * One level of the walk: of `found` (failed or cancelled dependents of `frontier`, each with the
 * dependency it was found by), those whose cascade came from that dependency and that were not
 * seen before; they are added to `candidates` and are the next frontier.
 */
export function cascadeStep(
  frontier: readonly CascadeRow[],
  found: readonly { dep: number; row: CascadeRow }[],
  candidates: Map<number, { row: CascadeRow; cause: number }>,
): CascadeRow[] {
  const bySeq = new Map(frontier.map((f) => [f.seq, f]));
  const next: CascadeRow[] = [];
  for (const { dep, row } of found) {
    const dependency = bySeq.get(dep);
    if (!dependency || candidates.has(row.seq) || !failedBy(row, dependency)) continue;
    candidates.set(row.seq, { row, cause: dep });
    next.push(row);
  }
  return next;
}

/**
 * The plan, given the retried `roots`, the walk's `candidates`, every failed or cancelled
 * dependent `found` on the way (with the dependency it hangs on) and `dependencies`: each
 * candidate's dependencies as they are now.
 */
export function reblockPlan(
  roots: readonly CascadeRow[],
  candidates: ReadonlyMap<number, { row: CascadeRow; cause: number }>,
  found: readonly { dep: number; row: CascadeRow }[],
  dependencies: readonly { task: number; row: CascadeRow }[],
): ReblockPlan {
  const reopened = new Set(roots.map((r) => r.seq));
  const accepted = new Set(candidates.keys());
  const depsOf = new Map<number, CascadeRow[]>();
  for (const { task, row } of dependencies) depsOf.set(task, [...(depsOf.get(task) ?? []), row]);
  const open = (seq: number) => reopened.has(seq) || accepted.has(seq);
  /** The first dependency (by id, as the cascade picks) still failed or cancelled. */
  const blocker = (seq: number) =>
    (depsOf.get(seq) ?? [])
      .filter((d) => !open(d.seq) && (d.status === 'failed' || d.status === 'cancelled'))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))[0];
  // Drop until stable: a candidate whose cause is not blocked again, or that another failed
  // dependency keeps failed; dropping one can drop those that hang on it.
  for (let changed = true; changed;) {
    changed = false;
    for (const [seq, { cause }] of candidates) {
      if (!accepted.has(seq) || (open(cause) && blocker(seq) === undefined)) continue;
      accepted.delete(seq);
      changed = true;
    }
  }
  const refail: ReblockPlan['refail'] = [];
  for (const [seq, { cause }] of candidates) {
    const still = accepted.has(seq) || !open(cause) ? undefined : blocker(seq);
    if (still)
      refail.push({
        seq,
        status: still.status === 'cancelled' ? 'cancelled' : 'failed',
        error: dependencyError(still),
      });
  }
  const unmet = found.filter((f) => open(f.dep)).map((f) => ({ task: f.row.seq, dep: f.dep }));
  const recount = [...new Set([...accepted, ...unmet.map((e) => e.task)])];
  return { reblock: [...accepted], refail, unmet, recount };
}
