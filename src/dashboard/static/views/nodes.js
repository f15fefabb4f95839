// Nodes: every taskq process live now or gone in the last hour (GET /nodes), on a page of its
// own (?view=nodes), and the warning that tasks are queued with no live worker, shown above every
// page while it holds. GET /nodes reads a table of at most the last hour's nodes, so it is read
// again every few seconds while a page shows it, and whenever the counts change.

import { api, AuthError } from '../lib/api.js';
import { el } from '../lib/dom.js';
import { ago, messageOf } from '../lib/format.js';

/** @typedef {import('../lib/types.js').NodeList} NodeList */
/** @typedef {import('../lib/types.js').Context} Context */

const REFRESH_MS = 5000;
/** Reads pushed by the counts are at most this often (the counts may change many times a second). */
const MIN_GAP_MS = 1000;

const rows = el('tbody', { id: 'nodes-rows' });
const summary = el('span', { class: 'muted small', id: 'nodes-summary', 'aria-live': 'polite' });
const banner = el('p', { class: 'notice', id: 'nodes-warning', dataset: { kind: 'error' }, role: 'status' });
banner.hidden = true;

/** @type {{ timer: ReturnType<typeof setInterval> | null, loading: Promise<void> | null, at: number }} */
const state = { timer: null, loading: null, at: 0 };

/** @param {string[]} ids @param {Context} ctx */
function taskLinks(ids, ctx) {
  if (ids.length === 0) return [el('span', { class: 'muted', text: '–' })];
  return ids.map((id) => {
    const link = el('a', { class: 'mono small task-link', href: `?task=${id}`, text: id.slice(0, 8) });
    link.addEventListener('click', (event) => {
      event.preventDefault();
      ctx.router.navigate({ task: id });
    });
    return link;
  });
}

/** @param {NodeList} list @param {Context} ctx */
function render(list, ctx) {
  banner.hidden = list.warning === null;
  banner.textContent = list.warning ? `No live worker: ${list.warning.message}.` : '';
  summary.textContent = `${list.live} live of ${list.nodes.length} in the last hour`;
  if (list.nodes.length === 0) {
    rows.replaceChildren(el('tr', {}, [el('td', { class: 'empty', colspan: '7', text: 'No nodes yet.' })]));
    return;
  }
  rows.replaceChildren(
    ...list.nodes.map((n) =>
      el('tr', { dataset: { node: n.id, status: n.status } }, [
        el('td', {}, [
          el('div', { class: 'mono small', text: n.id }),
          el('div', { class: 'muted small', text: `${n.host} · pid ${n.pid} · v${n.version}` }),
        ]),
        el('td', { text: n.role }),
        el('td', {}, [
          el('span', {
            class: `badge badge-${n.status === 'live' ? 'completed' : 'cancelled'}`,
            text: n.status,
          }),
        ]),
        el('td', { class: 'num', text: n.role === 'api' ? '–' : `${n.running} / ${n.concurrency}` }),
        el('td', { class: 'num', text: n.role === 'api' ? '–' : String(n.buffered) }),
        el('td', {
          class: 'small',
          text: n.stopped_at ? `stopped ${ago(n.stopped_at)}` : ago(n.last_seen_at),
        }),
        el('td', {}, [el('div', { class: 'node-tasks' }, taskLinks(n.tasks, ctx))]),
      ]),
    ),
  );
}

/** Reads GET /nodes (one read at a time) and shows it. @param {Context} ctx */
function load(ctx) {
  state.loading ??= (async () => {
    state.at = Date.now();
    try {
      render(/** @type {NodeList} */ (await api('/nodes')), ctx);
    } catch (err) {
      if (!(err instanceof AuthError)) summary.textContent = messageOf(err);
    } finally {
      state.loading = null;
    }
  })();
  return state.loading;
}

function stop() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

/** @type {import('../lib/types.js').View} */
export const nodesView = {
  id: 'nodes',
  page: 'nodes',
  tab: 'Nodes',
  mount: () =>
    el('section', { class: 'card', id: 'nodes' }, [
      el('div', { class: 'card-head' }, [el('h2', { text: 'Nodes' }), summary]),
      el('div', { class: 'table-wrap' }, [
        el('table', { class: 'tasks nodes' }, [
          el('thead', {}, [
            el(
              'tr',
              {},
              ['Node', 'Role', 'Status', 'Running', 'Buffered', 'Last seen', 'Tasks'].map((h) =>
                el('th', { text: h }),
              ),
            ),
          ]),
          rows,
        ]),
      ]),
    ]),
  start(ctx) {
    stop();
    void load(ctx);
    state.timer = setInterval(() => void load(ctx), REFRESH_MS);
  },
  // A change of the counts may start or end a backlog: the warning is read again.
  stats(_stats, ctx) {
    if (Date.now() - state.at >= MIN_GAP_MS) void load(ctx);
  },
  route(route, previous, ctx) {
    if (route.view === 'nodes' && previous.view !== 'nodes') void load(ctx);
  },
  stop,
};

/**
 * The no-live-worker warning, above every page (it is fed by the nodes view's reads).
 * @type {import('../lib/types.js').View}
 */
export const nodesWarningView = {
  id: 'nodes-warning',
  mount() {
    const main = document.getElementById('main');
    main?.prepend(banner);
    return banner;
  },
};
