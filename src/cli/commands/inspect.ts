/**
 * Commands that show what a running service is doing, through the typed client:
 * `taskq task ID` (one task with its graph and attempt history) and `taskq nodes` (GET /nodes).
 */
import type { Command } from 'commander';
import type { Attempt, GraphNode, NodeList, Task } from '../../client/index.js';
import { clientFrom, clip, formatTable, withClientOptions } from './producer.js';

/** How long an attempt ran: from its start (or claim) to its end. */
function duration(a: Attempt): string {
  const from = a.started_at ?? a.claimed_at;
  if (from === null) return '';
  const ms = Date.parse(a.finished_at) - Date.parse(from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The task's fields, then its attempts as a table (oldest first). */
export function formatTask(task: Task): string {
  const fields: [string, string][] = [
    ['id', task.id],
    ['action', task.action],
    ['status', task.status],
    ['attempts', `${task.attempts} of ${task.max_attempts}`],
    ['node', task.node ?? '-'],
    ['created', task.created_at],
    ['finished', task.processed_at ?? '-'],
  ];
  if (task.status === 'blocked') fields.push(['waiting for', `${task.pending_dependencies} dependencies`]);
  if (task.error !== null) fields.push(['error', task.error]);
  else if (task.result !== null) fields.push(['result', clip(JSON.stringify(task.result), 200)]);
  const lines = [formatTable(fields.map(([k, v]) => [`${k}:`, v]))];
  const graph = formatGraph(task);
  if (graph) lines.push('', graph);
  const history = task.attempt_history ?? [];
  lines.push('');
  if (history.length === 0) lines.push('no finished attempts yet');
  else {
    const rows = history.map((a) => [
      String(a.attempt),
      a.outcome,
      a.node ?? '-',
      a.started_at ?? '-',
      duration(a),
      clip(a.error ?? '', 60),
    ]);
    lines.push(formatTable([['#', 'OUTCOME', 'NODE', 'STARTED', 'TOOK', 'ERROR'], ...rows]));
  }
  return lines.join('\n');
}

/** Rows of each relation shown by `taskq task`; the rest are counted. */
const GRAPH_ROWS = 10;

/** The task's graph (GET /tasks/:id) as a table, a relation per row group; '' when it has none. */
export function formatGraph(task: Task): string {
  const counts = task.graph_counts ?? { depends_on: 0, dependents: 0, children: 0 };
  const groups: [string, GraphNode[], number][] = [
    ['depends on', task.depends_on ?? [], counts.depends_on],
    ['parent', task.parent ? [task.parent] : [], task.parent ? 1 : 0],
    ['dependent', task.dependents ?? [], counts.dependents],
    ['child', task.children ?? [], counts.children],
  ];
  const rows: string[][] = [];
  for (const [relation, nodes, total] of groups) {
    for (const n of nodes.slice(0, GRAPH_ROWS))
      rows.push([
        relation,
        n.id,
        n.action,
        n.status,
        n.status === 'blocked' ? String(n.pending_dependencies) : '',
      ]);
    if (total > Math.min(nodes.length, GRAPH_ROWS))
      rows.push([relation, `+${total - Math.min(nodes.length, GRAPH_ROWS)} more`, '', '', '']);
  }
  return rows.length === 0 ? '' : formatTable([['RELATION', 'TASK', 'ACTION', 'STATUS', 'PENDING'], ...rows]);
}

/** The nodes as a table, then the warning when there is one. */
export function formatNodes(list: NodeList): string {
  const rows = list.nodes.map((n) => [
    n.id,
    n.role,
    n.status,
    n.version,
    `${n.running}/${n.concurrency}`,
    n.last_seen_at,
    clip(n.tasks.join(','), 40),
  ]);
  const lines =
    rows.length === 0
      ? ['no nodes in the last hour']
      : [formatTable([['NODE', 'ROLE', 'STATUS', 'VERSION', 'RUNNING', 'LAST SEEN', 'TASKS'], ...rows])];
  lines.push('', `${list.live} live of ${list.nodes.length}`);
  if (list.warning) lines.push(`warning: ${list.warning.message}`);
  return lines.join('\n');
}

export function registerInspectCommands(program: Command): void {
  withClientOptions(
    program
      .command('task <id>')
      .description(
        'show one task of a running service with its graph (dependencies, dependents, parent, children) and attempt history (outcome, node, times, error)',
      )
      .option('--json', "print the JSON of GET /tasks/:id (with each attempt's stack)"),
  ).action(async (id: string, options: Record<string, unknown>) => {
    const task = await clientFrom(options).get(id);
    console.log(options.json ? JSON.stringify(task, null, 2) : formatTask(task));
  });

  withClientOptions(
    program
      .command('nodes')
      .description(
        'list the nodes (processes) of a running service, live and gone in the last hour, and warn when tasks wait with no live worker',
      )
      .option('--json', 'print the JSON of GET /nodes'),
  ).action(async (options: Record<string, unknown>) => {
    const list = await clientFrom(options).nodes();
    console.log(options.json ? JSON.stringify(list, null, 2) : formatNodes(list));
  });
}
