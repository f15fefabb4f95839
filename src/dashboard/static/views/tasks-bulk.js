// Bulk operations on the task table (POST /tasks/bulk; docs/dashboard.md, "Bulk operations"): a
// checkbox per row and one for the page. With the whole page selected, a bar offers every task
// matching the URL's filter, counted by a dry run of that filter (the API's one grammar). Retry,
// Cancel and Delete are enabled for the statuses GET /meta says each op changes, ask first with
// the exact count, then follow the operation's events (GET /operations/:id/events) as a progress
// bar, and refresh the table when it is done. Selected rows are sent as a filter of their whole
// ids (`id=<id>,<id>,...`), only those whose status the op changes.
//
// The selection belongs to the page on screen: another page or filter starts with none. A token
// without the operate scope sees no checkboxes and no bar (lib/access.js): it could change nothing.

import { can } from '../lib/access.js';
import { api, AuthError, openStream } from '../lib/api.js';
import { confirmAction } from '../lib/confirm.js';
import { el } from '../lib/dom.js';
import { messageOf, number } from '../lib/format.js';

/** @typedef {import('../lib/types.js').Context} Context */
/** @typedef {import('../lib/types.js').Task} Task */
/** @typedef {import('../lib/types.js').TaskStatus} TaskStatus */
/** @typedef {'retry' | 'cancel' | 'delete'} BulkOp */
/** GET /operations/:id. @typedef {import('../../../api/schemas.js').OperationView} Operation */
/** @typedef {{ matched: number, matched_exact: boolean }} Count */

/**
 * Each op's words and the scope a token needs for it (scoped tokens hide what they may not use).
 * @type {Record<BulkOp, { verb: string, done: string, scope: string, danger: boolean }>}
 */
const OPS = {
  retry: { verb: 'Retry', done: 'retried', scope: 'operate', danger: false },
  cancel: { verb: 'Cancel', done: 'cancelled', scope: 'operate', danger: true },
  delete: { verb: 'Delete', done: 'deleted', scope: 'admin', danger: true },
};
const OP_NAMES = /** @type {BulkOp[]} */ (Object.keys(OPS));

const state = {
  /** @type {Map<string, TaskStatus>} the rows on screen: id -> status */
  rows: new Map(),
  /** @type {Set<string>} */
  selected: new Set(),
  /** every task the filter matches is selected (the bar's "Select all N") */
  allMatching: false,
  /** @type {{ key: string, count: Count } | null} the dry run's count of the filter on screen */
  count: null,
  /** the count request whose answer is wanted; a newer one makes older answers stale */
  counts: 0,
  /** an operation submitted from here is still running */
  busy: false,
  /** @type {AbortController | null} */
  stream: null,
};

const pageBox = /** @type {HTMLInputElement} */ (
  el('input', { type: 'checkbox', id: 'select-page', 'aria-label': 'Select every task on this page' })
);
const selectedText = el('strong', { id: 'bulk-selected' });
const allText = el('span', { id: 'bulk-all', class: 'muted' });
const allButton = el('button', { class: 'link-button', type: 'button', id: 'bulk-select-all' });
/** @type {Record<BulkOp, HTMLButtonElement>} */
const buttons = /** @type {Record<BulkOp, HTMLButtonElement>} */ (
  Object.fromEntries(
    OP_NAMES.map((op) => [
      op,
      el('button', {
        class: OPS[op].danger ? 'btn btn-small btn-danger' : 'btn btn-small',
        type: 'button',
        id: `bulk-${op}`,
        dataset: { scope: OPS[op].scope, op },
        text: OPS[op].verb,
      }),
    ]),
  )
);
const bar = el('div', { class: 'bulk-bar', id: 'bulk-bar', hidden: '', dataset: { scope: 'operate' } }, [
  selectedText,
  el('span', { class: 'bulk-all' }, [allText, ' ', allButton]),
  el('span', { class: 'spacer' }),
  ...OP_NAMES.map((op) => buttons[op]),
]);
const progressBar = /** @type {HTMLProgressElement} */ (
  el('progress', { id: 'bulk-progress-bar', max: '1', value: '0' })
);
const progressText = el('span', { id: 'bulk-progress-text', class: 'small' });
const progress = el('div', { class: 'bulk-progress', id: 'bulk-progress', hidden: '' }, [
  progressBar,
  progressText,
]);
const note = el('p', { class: 'notice', id: 'bulk-note', role: 'status', hidden: '' });

/** The filter as the confirmation names it: `status=failed action=email`. @param {Record<string, string>} filter */
const filterText = (filter) =>
  Object.entries(filter)
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
/** @param {Record<string, string>} filter */
const filterKey = (filter) => new URLSearchParams(filter).toString();
/** @param {Count} count */
const countText = (count) => `${count.matched_exact ? '' : 'at least '}${number(count.matched)}`;
/** @param {number} n @param {string} [word] */
const tasks = (n, word = 'task') => `${number(n)} ${word}${n === 1 ? '' : 's'}`;

/** @param {string} text @param {'error' | 'info'} kind */
function say(text, kind = 'info') {
  note.textContent = text;
  note.dataset.kind = kind;
  note.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  note.hidden = !text;
}

/** @param {Record<string, string>} filter @returns {Promise<Count>} */
const dryRun = (filter) =>
  api('/tasks/bulk', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ op: 'retry', filter, dry_run: true }),
  });

/** Counts the filter on screen for the bar's "Select all N" (each time the whole page is selected). @param {Context} ctx */
async function countMatching(ctx) {
  const { filter } = ctx.router.route;
  const key = filterKey(filter);
  const mine = ++state.counts;
  try {
    const count = await dryRun(filter);
    if (mine === state.counts) state.count = { key, count };
  } catch (err) {
    if (!(err instanceof AuthError) && mine === state.counts) say(messageOf(err), 'error');
  }
  render(ctx);
}

/** The selected rows `op` changes (their status is one GET /meta lists for it). @param {Context} ctx @param {BulkOp} op */
const applicable = (ctx, op) =>
  [...state.selected].filter((id) => {
    const status = state.rows.get(id);
    return status !== undefined && ctx.meta.bulk[op].includes(status);
  });

/** Whether `op` may change anything of the selection. @param {Context} ctx @param {BulkOp} op */
function enabled(ctx, op) {
  if (state.busy) return false;
  if (!state.allMatching) return applicable(ctx, op).length > 0;
  const { status } = ctx.router.route.filter;
  // A filter without a status may match tasks of every status: the op skips the others.
  return status === undefined || /** @type {string[]} */ (ctx.meta.bulk[op]).includes(status);
}

/** @param {Context} ctx */
function render(ctx) {
  const onPage = state.rows.size;
  const picked = [...state.rows.keys()].filter((id) => state.selected.has(id)).length;
  pageBox.checked = onPage > 0 && picked === onPage;
  pageBox.indeterminate = picked > 0 && picked < onPage;
  for (const box of checkboxes()) box.checked = state.selected.has(box.dataset.id ?? '');
  bar.hidden = picked === 0;
  const count = state.count?.key === filterKey(ctx.router.route.filter) ? state.count.count : null;
  if (state.allMatching && count) {
    selectedText.textContent = `${countText(count)} selected`;
    allText.textContent = `All ${countText(count)} tasks matching this filter are selected.`;
    allButton.textContent = 'Select only this page';
    allButton.hidden = false;
  } else {
    selectedText.textContent = `${number(picked)} selected`;
    const whole = picked === onPage && onPage > 0;
    allText.textContent = whole ? `All ${number(onPage)} on this page are selected.` : '';
    const more = whole && count !== null && (count.matched > onPage || !count.matched_exact);
    const filtered = Object.keys(ctx.router.route.filter).length > 0;
    allButton.textContent = !more
      ? ''
      : filtered
        ? `Select all ${countText(count)} matching this filter`
        : `Select all ${countText(count)} tasks`;
    allButton.hidden = !more;
  }
  for (const op of OP_NAMES) {
    buttons[op].disabled = !enabled(ctx, op);
    buttons[op].title = `${OPS[op].verb}: changes ${ctx.meta.bulk[op].join(', ')} tasks; others are skipped`;
  }
}

/** @returns {HTMLInputElement[]} */
const checkboxes = () => [
  .../** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll('#rows input.row-select')),
];

/** Asks, then submits `op` for the selection. @param {Context} ctx @param {BulkOp} op */
async function run(ctx, op) {
  const { verb } = OPS[op];
  /** @type {Record<string, string>} */
  let filter;
  /** @type {string} */
  let question;
  /** @type {number} */
  let n;
  let detail = '';
  if (state.allMatching) {
    filter = { ...ctx.router.route.filter };
    /** @type {Count} */
    let count;
    try {
      count = await dryRun(filter); // counted again now: the confirmation says what will be sent
    } catch (err) {
      if (!(err instanceof AuthError)) say(messageOf(err), 'error');
      return;
    }
    state.count = { key: filterKey(filter), count };
    render(ctx);
    if (count.matched === 0) return say('No tasks match this filter now.');
    n = count.matched;
    const named = filterText(filter);
    question = named
      ? `${verb} ${countText(count)} ${count.matched === 1 ? 'task' : 'tasks'} matching ${named}?`
      : `${verb} all ${countText(count)} ${count.matched === 1 ? 'task' : 'tasks'}?`;
    if (filter.status === undefined)
      detail = `Only ${ctx.meta.bulk[op].join(', ')} tasks are ${OPS[op].done}; the others are skipped.`;
  } else {
    const ids = applicable(ctx, op);
    if (ids.length === 0) return;
    filter = { id: ids.join(',') };
    n = ids.length;
    const others = state.selected.size - ids.length;
    question = `${verb} ${tasks(ids.length, 'selected task')}?`;
    if (others > 0)
      detail = `${tasks(others, 'other')} selected ${others === 1 ? 'is' : 'are'} not ${ctx.meta.bulk[op].join(' or ')} and ${others === 1 ? 'stays' : 'stay'} as ${others === 1 ? 'it is' : 'they are'}.`;
  }
  const text = [
    detail,
    op === 'delete' ? 'Deleted tasks are gone for good.' : '',
    'It runs in the background, in steps.',
  ]
    .filter(Boolean)
    .join(' ');
  const ask = {
    title: question,
    text,
    confirm: `${verb} ${tasks(n)}`,
    danger: OPS[op].danger,
    dismiss: 'Back',
  };
  if (!(await confirmAction(ask))) return;
  say('');
  /** @type {{ operation_id: string, matched: number }} */
  let accepted;
  try {
    accepted = await api('/tasks/bulk', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ op, filter }),
    });
  } catch (err) {
    if (!(err instanceof AuthError)) say(`${verb} failed: ${messageOf(err)}`, 'error');
    return;
  }
  follow(ctx, op, accepted.operation_id, accepted.matched);
}

/**
 * Shows the operation's progress from its event stream until it finishes, then refreshes the table.
 * @param {Context} ctx @param {BulkOp} op @param {string} id @param {number} matched
 */
function follow(ctx, op, id, matched) {
  state.busy = true;
  state.stream?.abort();
  progress.hidden = false;
  progress.dataset.state = 'running';
  progressBar.max = Math.max(1, matched);
  progressBar.value = 0;
  progressText.textContent = `0 of ${number(matched)} ${OPS[op].done}`;
  render(ctx);
  let finished = false;
  const end = () => {
    state.busy = false;
    state.stream?.abort();
    state.stream = null;
    clear();
    render(ctx);
    ctx.refresh();
  };
  state.stream = openStream(`/operations/${id}/events`, {
    event: (name, data) => {
      if (name !== 'operation') return;
      /** @type {Operation} */
      const operation = JSON.parse(data);
      const seen = operation.done + operation.skipped;
      progressBar.max = Math.max(1, operation.matched);
      progressBar.value = seen;
      progressText.textContent = `${number(operation.done)} of ${number(operation.matched)} ${OPS[op].done}${operation.skipped ? `, ${number(operation.skipped)} skipped` : ''}`;
      if (operation.errors > 0)
        say(
          `${tasks(operation.errors, 'step')} failed and ${operation.errors === 1 ? 'was' : 'were'} tried again: ${operation.last_error ?? 'no message'}`,
          'error',
        );
      if (operation.status !== 'running' && !finished) {
        finished = true;
        progress.dataset.state = 'done';
        progressText.textContent = `Done: ${progressText.textContent}.`;
        end();
      }
    },
    again: () => !finished,
    refused: (err) => {
      say(`Following the operation failed: ${err.message}`, 'error');
      end();
    },
    dropped: (err) =>
      say(`The operation's progress stream dropped (${messageOf(err)}); reconnecting`, 'error'),
  });
}

/** No selection (another page, another filter, or an operation submitted). */
function clear() {
  state.selected.clear();
  state.allMatching = false;
}

/** The row's checkbox cell. @param {Task} task */
export function selectCell(task) {
  const box = el('input', {
    type: 'checkbox',
    class: 'row-select',
    dataset: { id: task.id },
    'aria-label': `Select task ${task.id.slice(0, 8)}`,
  });
  if (state.selected.has(task.id)) box.setAttribute('checked', '');
  return el('td', { class: 'col-select', dataset: { scope: 'operate' } }, [box]);
}

/** Selects or unselects one row (its checkbox, or `x`). @param {Context} ctx @param {string} id */
export function toggleRow(ctx, id) {
  if (!state.rows.has(id) || !can('operate')) return;
  state.allMatching = false;
  if (state.selected.has(id)) state.selected.delete(id);
  else state.selected.add(id);
  render(ctx);
  if (state.selected.size === state.rows.size) void countMatching(ctx);
}

export const bulk = {
  /** Wires the header checkbox, the bar and its buttons into the task card. @param {Context} ctx */
  mount(ctx) {
    const head = document.querySelector('#tasks-card thead tr');
    head?.prepend(el('th', { class: 'col-select', dataset: { scope: 'operate' } }, [pageBox]));
    document.querySelector('#tasks-card .table-wrap')?.before(bar, progress, note);
    pageBox.addEventListener('change', () => {
      state.allMatching = false;
      if (pageBox.checked) for (const id of state.rows.keys()) state.selected.add(id);
      else state.selected.clear();
      render(ctx);
      if (pageBox.checked) void countMatching(ctx);
    });
    allButton.addEventListener('click', () => {
      state.allMatching = !state.allMatching;
      render(ctx);
    });
    for (const op of OP_NAMES) buttons[op].addEventListener('click', () => void run(ctx, op));
    document.querySelector('#rows')?.addEventListener('change', (event) => {
      const box = event.target;
      if (box instanceof HTMLInputElement && box.classList.contains('row-select') && box.dataset.id)
        toggleRow(ctx, box.dataset.id);
    });
  },
  /** A page of tasks is on screen: the selection keeps the rows still on it. @param {Context} ctx @param {Task[]} page */
  shown(ctx, page) {
    state.rows = new Map(page.map((t) => [t.id, t.status]));
    if (state.allMatching) for (const id of state.rows.keys()) state.selected.add(id);
    for (const id of state.selected) if (!state.rows.has(id)) state.selected.delete(id);
    render(ctx);
  },
  /** Another page or filter: nothing selected, and the count is read again when asked. @param {Context} ctx */
  moved(ctx) {
    clear();
    state.count = null;
    render(ctx);
  },
};
