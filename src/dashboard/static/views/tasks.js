// The task table: one page of GET /tasks (newest first) for the URL's filter and cursor, with
// Newer/Older paging, j/k selection and Enter to open. Only the first page follows live changes.
// Its checkboxes, `x` and the bulk bar are tasks-bulk.js.

import { api, AuthError } from '../lib/api.js';
import { $, $button, $input, $select, badge, el } from '../lib/dom.js';
import { ago, label, messageOf, waitingForSlot } from '../lib/format.js';
import { samePage } from '../lib/router.js';
import { addShortcut } from '../lib/shortcuts.js';
import { bulk, selectCell, toggleRow } from './tasks-bulk.js';

/** @typedef {import('../lib/types.js').Context} Context */
/** @typedef {import('../lib/types.js').TaskPage} TaskPage */

const PAGE_SIZE = 25;
const REFRESH_MS = 2000;
/** Filter keys with a control of their own; any other URL filter key is listed beside them. */
const CONTROLS = { status: 'filter-status', action: 'filter-action' };

const state = {
  /** @type {string | null} */
  nextCursor: null,
  /** @type {string | null} the selected row's task id (j/k) */
  selected: null,
  /** @type {Set<string>} actions seen in the stats, for the filter */
  actions: new Set(),
  /** @type {ReturnType<typeof setTimeout> | null} */
  refreshTimer: null,
  /** the request whose answer is shown; a newer one makes older answers stale */
  loads: 0,
};

const rows = () => [...$('rows').querySelectorAll('tr')];

/** @param {Context} ctx */
async function load(ctx) {
  const { filter, cursor } = ctx.router.route;
  const params = new URLSearchParams({ ...filter, limit: String(PAGE_SIZE) });
  if (cursor) params.set('cursor', cursor);
  const load = ++state.loads;
  /** @type {TaskPage} */
  let page;
  try {
    page = await api(`/tasks?${params}`);
  } catch (err) {
    if (!(err instanceof AuthError) && load === state.loads) $('table-note').textContent = messageOf(err);
    return;
  }
  if (load !== state.loads) return;
  $('table-note').textContent = '';
  state.nextCursor = page.next_cursor;
  const hadFocus = document.activeElement instanceof HTMLTableRowElement;
  $('rows').replaceChildren(
    ...page.tasks.map((task) =>
      el('tr', { tabindex: '0', dataset: { id: task.id, status: task.status } }, [
        selectCell(task),
        el('td', { class: 'mono', title: task.id, text: task.id.slice(0, 8) }),
        el('td', { text: task.action }),
        el('td', {}, waitingForSlot(task) ? [badge(task.status), waitingNote()] : [badge(task.status)]),
        el('td', { class: 'col-attempts', text: `${task.attempts} / ${task.max_attempts}` }),
        el('td', { class: 'col-created', title: task.created_at, text: ago(task.created_at) }),
        el('td', { class: 'col-finished', title: task.processed_at || '', text: ago(task.processed_at) }),
      ]),
    ),
  );
  select(state.selected, hadFocus);
  bulk.shown(ctx, page.tasks);
  $('empty').hidden = page.tasks.length > 0;
  const { trail } = ctx.router.route;
  $button('newer').disabled = trail.length === 0;
  $button('older').disabled = !state.nextCursor;
  $('page-label').textContent = `Page ${trail.length + 1}`;
}

const waitingNote = () => el('span', { class: 'muted small', text: ' waiting for a slot' });

/** Marks the row of `id` selected (if it is on this page). @param {string | null} id @param {boolean} focus */
function select(id, focus) {
  state.selected = id;
  for (const row of rows()) {
    const on = row.dataset.id === id;
    row.setAttribute('aria-selected', String(on));
    if (on && focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: 'nearest' });
    }
  }
}

/** @param {1 | -1} step */
function move(step) {
  const all = rows();
  if (all.length === 0) return;
  const at = all.findIndex((row) => row.dataset.id === state.selected);
  const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
  select(all[next]?.dataset.id ?? null, true);
}

/** The filter's keys without a control of their own, shown so a deep link's filter is never hidden. @param {Context} ctx */
function showFilter(ctx) {
  const { filter } = ctx.router.route;
  for (const [key, id] of Object.entries(CONTROLS)) $select(id).value = filter[key] ?? '';
  const others = Object.entries(filter).filter(([key]) => !(key in CONTROLS));
  $('filter-extra').replaceChildren(
    ...others.map(([key, value]) => {
      const chip = el('button', { class: 'chip', type: 'button', title: 'Remove this filter' }, [
        `${key}=${value} ✕`,
      ]);
      chip.addEventListener('click', () => {
        const { [key]: _removed, ...rest } = ctx.router.route.filter;
        ctx.router.navigate({ filter: rest });
      });
      return chip;
    }),
  );
}

/**
 * @param {HTMLSelectElement} select @param {string[]} values @param {string} current
 * @param {(value: string) => string} [text] an option's label
 */
function options(select, values, current, text = (v) => v) {
  select.replaceChildren(
    el('option', { value: '', text: 'All' }),
    ...values.map((v) => el('option', { value: v, text: text(v) })),
  );
  // A value from the URL the list does not (yet) know still shows as selected.
  if (current && !values.includes(current)) select.append(el('option', { value: current, text: current }));
  select.value = current;
}

/** @type {import('../lib/types.js').View} */
export const tasksView = {
  id: 'tasks',
  page: 'tasks',
  tab: 'Tasks', // the home page's tab, shown once a second page exists
  mount(ctx) {
    for (const [key, id] of Object.entries(CONTROLS)) {
      $select(id).addEventListener('change', () => {
        const { [key]: _old, ...rest } = ctx.router.route.filter;
        const value = $select(id).value;
        ctx.router.navigate({ filter: value ? { ...rest, [key]: value } : rest });
      });
    }
    $('older').addEventListener('click', () => {
      const { cursor, trail } = ctx.router.route;
      if (state.nextCursor)
        ctx.router.navigate({ cursor: state.nextCursor, trail: [...trail, cursor ?? ''] });
    });
    $('newer').addEventListener('click', () => {
      const trail = [...ctx.router.route.trail];
      const cursor = trail.pop();
      ctx.router.navigate({ cursor: cursor || null, trail });
    });
    bulk.mount(ctx);
    $('rows').addEventListener('click', (event) => {
      // A row's checkbox selects it for a bulk operation; the rest of the row opens the task.
      if (event.target instanceof Element && event.target.closest('.col-select')) return;
      const row = event.target instanceof Element ? event.target.closest('tr[data-id]') : null;
      const id = row?.getAttribute('data-id');
      if (id) {
        select(id, false);
        ctx.router.navigate({ task: id });
      }
    });
    // Tab onto a row selects it too, so Enter opens the row that has the focus.
    $('rows').addEventListener('focusin', (event) => {
      const id = event.target instanceof HTMLElement ? event.target.dataset.id : undefined;
      if (id) select(id, false);
    });
    $('search').addEventListener('submit', (event) => {
      event.preventDefault();
      const id = $input('search-id').value.trim();
      if (id) ctx.router.navigate({ task: id });
    });
    const onPage = () => ctx.router.route.view === 'tasks';
    addShortcut({
      key: '/',
      help: 'Find a task by id',
      when: onPage,
      run: () => $input('search-id').focus(),
    });
    addShortcut({ key: 'j', help: 'Select the next / previous task', when: onPage, run: () => move(1) });
    addShortcut({ key: 'k', help: 'Select the next / previous task', when: onPage, run: () => move(-1) });
    addShortcut({
      key: 'x',
      help: 'Select the task for Retry, Cancel or Delete (or unselect it)',
      when: () => onPage() && state.selected !== null,
      run: () => state.selected && toggleRow(ctx, state.selected),
    });
    addShortcut({
      key: 'Enter',
      help: 'Open the selected task',
      // A focused button or link keeps its own Enter.
      when: () =>
        onPage() &&
        state.selected !== null &&
        !(
          document.activeElement instanceof HTMLButtonElement ||
          document.activeElement instanceof HTMLAnchorElement
        ),
      run: () => ctx.router.navigate({ task: state.selected }),
    });
    return $('tasks-card');
  },
  start(ctx) {
    options($select(CONTROLS.status), ctx.meta.statuses, ctx.router.route.filter.status ?? '', label);
    showFilter(ctx);
    return load(ctx);
  },
  route(route, previous, ctx) {
    if (samePage(route, previous)) return;
    bulk.moved(ctx);
    showFilter(ctx);
    void load(ctx);
  },
  stats(stats, ctx) {
    const known = new Set(stats.by_action.map((a) => a.action));
    if ([...known].some((a) => !state.actions.has(a))) {
      state.actions = known;
      options($select(CONTROLS.action), [...known].sort(), ctx.router.route.filter.action ?? '');
    }
    // Counts changed: refresh the first page, at most every 2 s.
    if (state.refreshTimer || ctx.router.route.cursor) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      if (!ctx.router.route.cursor) void load(ctx);
    }, REFRESH_MS);
  },
  refresh(ctx) {
    void load(ctx);
  },
};
