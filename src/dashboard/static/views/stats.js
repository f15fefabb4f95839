// Counts by status (one card per status from GET /meta; click filters the table) and the
// throughput chart, both fed by the live stats stream.

import { $, el, svgEl as add } from '../lib/dom.js';
import { duration, label, number } from '../lib/format.js';

/** @typedef {import('../lib/types.js').Stats} Stats */
/** @typedef {import('../lib/types.js').Context} Context */

/** @type {Stats['throughput']} */
let lastThroughput = [];

/** @type {import('../lib/types.js').View} */
export const statsView = {
  id: 'stats',
  page: 'tasks',
  mount() {
    window.addEventListener('resize', () => renderChart(lastThroughput));
    return $('overview');
  },
  start(ctx) {
    const cards = ctx.meta.statuses.map((status) => {
      const card = el('button', { class: 'count', type: 'button', dataset: { status } }, [
        el('span', { class: 'count-label', text: label(status) }),
        el('span', { class: 'count-value', text: '–', dataset: { count: status } }),
      ]);
      card.addEventListener('click', () => {
        const { filter } = ctx.router.route;
        const { status: current, ...rest } = filter;
        ctx.router.navigate({ filter: current === status ? rest : { ...rest, status } });
      });
      return card;
    });
    $('counts')
      .querySelectorAll('.count[data-status]')
      .forEach((card) => card.remove());
    $('counts').prepend(...cards);
  },
  stats(stats, ctx) {
    for (const status of ctx.meta.statuses) {
      const cell = document.querySelector(`[data-count="${status}"]`);
      if (cell) cell.textContent = number(stats.counts[status]);
    }
    $('oldest').textContent =
      stats.oldest_queued_age_ms === null ? '–' : duration(stats.oldest_queued_age_ms);
    renderChart(stats.throughput);
  },
};

/** @param {Stats['throughput']} points */
function renderChart(points) {
  lastThroughput = points;
  const box = $('chart');
  const width = Math.max(280, box.clientWidth);
  const height = 170;
  const pad = { left: 36, right: 8, top: 10, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...points.map((p) => p.completed + p.failed));
  const top = niceCeil(max);
  const svg = add(null, 'svg', { viewBox: `0 0 ${width} ${height}`, width, height });
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + plotH - (plotH * i) / 4;
    add(svg, 'line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: i === 0 ? 'axis' : 'grid' });
    add(
      svg,
      'text',
      { x: pad.left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' },
      number((top * i) / 4),
    );
  }
  const slot = plotW / Math.max(1, points.length);
  const barW = Math.max(1, slot - Math.min(3, slot * 0.25));
  /** @param {number} n */
  const scale = (n) => (n / top) * plotH;
  points.forEach((p, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const hc = scale(p.completed);
    const hf = scale(p.failed);
    const base = pad.top + plotH;
    const g = add(svg, 'g', {});
    const time = new Date(p.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    add(g, 'title', {}, `${time}: ${p.completed} completed, ${p.failed} failed`);
    add(g, 'rect', { x, y: pad.top, width: barW, height: plotH, class: 'hit' });
    if (hc > 0) add(g, 'rect', { x, y: base - hc, width: barW, height: hc, class: 'bar-completed' });
    if (hf > 0) add(g, 'rect', { x, y: base - hc - hf, width: barW, height: hf, class: 'bar-failed' });
  });
  /** @type {[number, string][]} */
  const ticks = [
    [0, '60 min ago'],
    [30, '30 min'],
    [points.length - 1, 'now'],
  ];
  for (const [i, tick] of ticks) {
    const anchor = i === 0 ? 'start' : i === points.length - 1 ? 'end' : 'middle';
    const x = i === 0 ? pad.left : i === points.length - 1 ? width - pad.right : pad.left + i * slot;
    add(svg, 'text', { x, y: height - 6, class: 'tick', 'text-anchor': anchor }, tick);
  }
  box.replaceChildren(svg);
  $('sum-completed').textContent = number(points.reduce((n, p) => n + p.completed, 0));
  $('sum-failed').textContent = number(points.reduce((n, p) => n + p.failed, 0));
}

/** @param {number} n */
function niceCeil(n) {
  const step = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 4, 5, 10]) if (m * step >= n) return Math.max(4, m * step);
  return n;
}
