// The task's graph in the task panel (slot 'detail-extra'): an SVG in three columns, upstream on
// the left (the tasks it depends on, and the parent whose handler enqueued it), the task in the
// centre, downstream on the right (its dependents and the children its handler enqueued). Each
// node is coloured by its status, shows how many dependencies a blocked one still waits for, and
// opens that task (a deep link, ?task=ID). Children the task waits for (ctx.waitForChildren) are
// its dependencies too; they show once, on the left, marked "child".
//
// Bounded: GET /tasks/:id lists at most 100 of each kind with graph_counts saying how many there
// are; this draws SHOWN of each and a "+K more" line for the rest. Live: the panel's stream
// (GET /tasks/:id/events) pushes the task with its graph on every change of the task, so the
// graph is redrawn from what the stream sends and never read or polled by itself.

import { el, svgEl } from '../lib/dom.js';

/** @typedef {import('../lib/types.js').Task} Task */
/** @typedef {import('../lib/types.js').Context} Context */
/** @typedef {import('../lib/types.js').GraphNode} GraphNode */

/** Nodes drawn per group; the rest are counted in a "+K more" line. */
export const SHOWN = 6;

const NODE = { w: 136, h: 42, gap: 8 };
const COL = { left: 0, centre: 176, right: 352 };
const WIDTH = COL.right + NODE.w;
const HEADING = 18;

/**
 * @typedef {object} Group
 * @property {string} title
 * @property {GraphNode[]} nodes
 * @property {number} more  how many are not drawn
 * @property {'dependency' | 'parent' | 'dependent' | 'child'} kind
 * @property {Set<string>} [children]  ids drawn in this group that are also the task's children
 */

const box = el('div', { class: 'graph-box', id: 'task-graph-box' });
const section = el('section', { class: 'task-graph', id: 'task-graph' }, [el('h3', { text: 'Graph' }), box]);
section.hidden = true;

/** The task whose graph is drawn. */
const state = { shownFor: '' };

/** @param {GraphNode[]} nodes @param {number} total @param {number} [hidden] drawn elsewhere */
function cut(nodes, total, hidden = 0) {
  const shown = nodes.slice(0, SHOWN);
  return { nodes: shown, more: Math.max(0, total - hidden - shown.length) };
}

/** The groups of each side. @param {Task} task @returns {{ left: Group[], right: Group[] }} */
export function groupsOf(task) {
  const counts = task.graph_counts ?? { depends_on: 0, dependents: 0, children: 0 };
  const dependsOn = task.depends_on ?? [];
  const children = task.children ?? [];
  const upstream = new Set(dependsOn.map((n) => n.id));
  const awaited = new Set(children.filter((c) => upstream.has(c.id)).map((c) => c.id));
  const rest = children.filter((c) => !awaited.has(c.id));
  /** @type {Group[]} */
  const left = [];
  /** @type {Group[]} */
  const right = [];
  if (dependsOn.length > 0)
    left.push({
      title: awaited.size > 0 ? 'Waits for' : 'Depends on',
      kind: 'dependency',
      children: awaited,
      ...cut(dependsOn, counts.depends_on),
    });
  if (task.parent) left.push({ title: 'Parent', kind: 'parent', nodes: [task.parent], more: 0 });
  if ((task.dependents ?? []).length > 0)
    right.push({ title: 'Dependents', kind: 'dependent', ...cut(task.dependents ?? [], counts.dependents) });
  // Children it waits for are drawn on the left; the count of the others is what remains.
  if (rest.length > 0)
    right.push({ title: 'Children', kind: 'child', ...cut(rest, counts.children, awaited.size) });
  return { left, right };
}

/** @param {GraphNode | Task} n */
const statusLine = (n) => (n.status === 'blocked' ? `blocked · ${n.pending_dependencies} pending` : n.status);

/** @param {string} text @param {number} max */
const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * One node at (x, y); a neighbour is a link to its task, the centre is not.
 * @param {SVGElement} svg @param {GraphNode | Task} n @param {number} x @param {number} y
 * @param {{ centre?: boolean, tag?: string, ctx: Context }} opts
 */
function drawNode(svg, n, x, y, { centre = false, tag, ctx }) {
  const parent = centre
    ? svgEl(svg, 'g', { class: 'graph-node graph-centre', 'data-status': n.status, 'data-task-id': n.id })
    : svgEl(svg, 'a', {
        class: 'graph-node',
        href: `?task=${encodeURIComponent(n.id)}`,
        'data-status': n.status,
        'data-task-id': n.id,
      });
  if (!centre)
    parent.addEventListener('click', (event) => {
      const e = /** @type {MouseEvent} */ (event);
      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return; // a new tab or window
      e.preventDefault();
      ctx.router.navigate({ task: n.id });
    });
  svgEl(parent, 'title', {}, `${n.action} ${n.id} (${statusLine(n)})`);
  svgEl(parent, 'rect', { x, y, width: NODE.w, height: NODE.h, rx: 7 });
  svgEl(parent, 'text', { x: x + 8, y: y + 17, class: 'graph-action' }, clip(n.action, 13));
  const right = { x: x + NODE.w - 8, 'text-anchor': 'end' };
  svgEl(parent, 'text', { ...right, y: y + 17, class: 'graph-id' }, n.id.slice(0, 4));
  svgEl(parent, 'text', { x: x + 8, y: y + 33, class: 'graph-status' }, statusLine(n));
  if (tag) svgEl(parent, 'text', { ...right, y: y + 33, class: 'graph-tag' }, tag);
}

/**
 * A curve from (x1, y1) to (x2, y2) with an arrow at its end, dashed for an enqueue edge.
 * @param {SVGElement} svg @param {number} x1 @param {number} y1 @param {number} x2 @param {number} y2 @param {boolean} dashed
 */
function edge(svg, x1, y1, x2, y2, dashed) {
  const mid = (x1 + x2) / 2;
  svgEl(svg, 'path', {
    d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
    class: dashed ? 'graph-edge graph-edge-enqueued' : 'graph-edge',
    'marker-end': 'url(#graph-arrow)',
  });
}

/** The height a column of groups takes. @param {Group[]} groups */
const columnHeight = (groups) =>
  groups.reduce((h, g) => h + HEADING + (g.nodes.length + (g.more > 0 ? 1 : 0)) * (NODE.h + NODE.gap), 0);

/** @param {Task} task @param {Context} ctx */
export function draw(task, ctx) {
  const { left, right } = groupsOf(task);
  if (left.length === 0 && right.length === 0) {
    section.hidden = true;
    box.replaceChildren();
    return;
  }
  section.hidden = false;
  const height = Math.max(columnHeight(left), columnHeight(right), NODE.h + HEADING);
  const svg = svgEl(null, 'svg', {
    viewBox: `0 0 ${WIDTH} ${height}`,
    width: '100%',
    class: 'graph',
    role: 'img',
    'aria-label': `dependency graph of task ${task.id}`,
  });
  const marker = svgEl(svgEl(svg, 'defs'), 'marker', {
    id: 'graph-arrow',
    viewBox: '0 0 8 8',
    refX: 7,
    refY: 4,
    markerWidth: 7,
    markerHeight: 7,
    orient: 'auto-start-reverse',
  });
  svgEl(marker, 'path', { d: 'M0,0 L8,4 L0,8 z', class: 'graph-arrow' });
  const centreY = (height - NODE.h) / 2;
  drawNode(svg, task, COL.centre, centreY, { centre: true, ctx });
  const cy = centreY + NODE.h / 2;
  /** @param {Group[]} groups @param {number} x @param {boolean} upstream */
  const column = (groups, x, upstream) => {
    let y = (height - columnHeight(groups)) / 2;
    for (const g of groups) {
      svgEl(svg, 'text', { x, y: y + 12, class: 'graph-heading' }, g.title);
      y += HEADING;
      for (const n of g.nodes) {
        const child = g.children?.has(n.id) ?? false;
        drawNode(svg, n, x, y, { ctx, tag: child ? 'child' : undefined });
        const ny = y + NODE.h / 2;
        // Arrows point from what runs first to what waits: dependency -> task -> dependent; an
        // enqueue edge (dashed) from parent to child.
        if (upstream) edge(svg, x + NODE.w, ny, COL.centre, cy, g.kind === 'parent');
        else edge(svg, COL.centre + NODE.w, cy, x, ny, g.kind === 'child');
        y += NODE.h + NODE.gap;
      }
      if (g.more > 0) {
        svgEl(svg, 'rect', { x, y, width: NODE.w, height: NODE.h, rx: 7, class: 'graph-more' });
        svgEl(
          svg,
          'text',
          { x: x + NODE.w / 2, y: y + 26, 'text-anchor': 'middle', class: 'graph-more-text' },
          `+${g.more.toLocaleString()} more`,
        );
        y += NODE.h + NODE.gap;
      }
    }
  };
  column(left, COL.left, true);
  column(right, COL.right, false);
  box.replaceChildren(svg);
}

/** @type {import('../lib/types.js').View} */
export const taskGraphView = {
  id: 'task-graph',
  slot: 'detail-extra',
  mount: () => section,
  task(task, ctx) {
    if (!task || (task.id !== state.shownFor && task.graph_counts === undefined)) {
      state.shownFor = '';
      section.hidden = true;
      box.replaceChildren();
      return;
    }
    // The stream's pushes carry the graph; a retry's or cancel's answer does not (the stream
    // that follows it does): keep what is drawn until then.
    if (task.graph_counts === undefined) return;
    state.shownFor = task.id;
    draw(task, ctx);
  },
};
