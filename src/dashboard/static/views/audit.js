// The Audit page (admin tokens only; docs/security.md): the audit log of GET /audit, newest
// first: when, which token, what, on what, a bulk operation's filter and matched count, and the
// answer's status. Filters by token name and action; Newer/Older move by the API's cursor. The
// page shown is re-read every few seconds while it is open, so new entries appear on page 1.

import { pageReader } from '../lib/page-reader.js';
import { can } from '../lib/access.js';
import { consoleTable, el } from '../lib/dom.js';
import { localTime, number } from '../lib/format.js';

/** @typedef {import('../lib/types.js').Context} Context */
/** @typedef {import('../../../api/console-schemas.js').AuditEntryItem} AuditEntry */
/** @typedef {import('../../../api/console-schemas.js').AuditListItem} AuditList */

const PAGE_SIZE = 25;
const rows = el('tbody', { id: 'audit-rows' });
const note = el('span', { class: 'muted small', id: 'audit-note', 'aria-live': 'polite' });
const empty = el('p', { class: 'empty', id: 'audit-empty', text: 'No operator actions yet.', hidden: '' });
const tokenInput = /** @type {HTMLInputElement} */ (
  el('input', { id: 'audit-token', type: 'search', placeholder: 'token name', 'aria-label': 'Token name' })
);
const actionInput = /** @type {HTMLInputElement} */ (
  el('input', {
    id: 'audit-action',
    type: 'search',
    placeholder: 'action, e.g. tasks.retry',
    'aria-label': 'Action',
  })
);
const newer = /** @type {HTMLButtonElement} */ (
  el('button', { id: 'audit-newer', class: 'btn', type: 'button', disabled: '' }, ['← Newer'])
);
const older = /** @type {HTMLButtonElement} */ (
  el('button', { id: 'audit-older', class: 'btn', type: 'button', disabled: '' }, ['Older →'])
);
const pageLabel = el('span', { class: 'muted small', id: 'audit-page', text: 'Page 1' });

/** The cursors of the pages before this one (empty on page 1), this page's, and the next one's. */
const state = {
  /** @type {(string | undefined)[]} */ trail: [],
  /** @type {string | undefined} */ cursor: undefined,
  /** @type {string | null} */ next: null,
};

function path() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const tokenName = tokenInput.value.trim();
  const action = actionInput.value.trim();
  if (tokenName) query.set('token', tokenName);
  if (action) query.set('action', action);
  if (state.cursor) query.set('cursor', state.cursor);
  return `/audit?${query}`;
}

/** A bulk operation's filter as `key=value` pairs. @param {AuditEntry} e */
function filterOf(e) {
  const filter = e.detail?.filter;
  if (!filter || typeof filter !== 'object') return '';
  return Object.entries(filter)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

/** @param {AuditEntry} e */
function matchedOf(e) {
  const matched = e.detail?.matched;
  const counted = typeof matched === 'number' ? number(matched) : '';
  return e.detail?.dry_run ? `${counted} (dry run)`.trim() : counted;
}

/** @param {AuditEntry} e */
function row(e) {
  const failed = e.status >= 400;
  return el('tr', { dataset: { entry: e.id, action: e.action } }, [
    el('td', { text: localTime(e.at), title: e.at }),
    el('td', { text: e.token ?? '–' }),
    el('td', { class: 'mono', text: e.action }),
    el('td', { class: 'mono small', text: e.target ?? '–', title: `${e.method} ${e.route}` }),
    el('td', { class: 'mono small', text: filterOf(e) }),
    el('td', { class: 'num', text: matchedOf(e) }),
    el('td', {}, [
      el('span', { class: `badge badge-${failed ? 'failed' : 'completed'}`, text: String(e.status) }),
    ]),
  ]);
}

const reader = pageReader(
  /** @type {{ page: string, path: () => string, note: HTMLElement, render: (answer: AuditList) => void }} */ ({
    page: 'audit',
    path,
    note,
    render: (answer) => {
      note.textContent = '';
      rows.replaceChildren(...answer.entries.map(row));
      empty.hidden = answer.entries.length > 0;
      state.next = answer.next_cursor;
      newer.disabled = state.trail.length === 0;
      older.disabled = !state.next;
      pageLabel.textContent = `Page ${state.trail.length + 1}`;
    },
  }),
);

/** @type {Context | null} */
let context = null;
/** Re-reads from `cursor`, keeping the trail. @param {string | undefined} cursor */
function show(cursor) {
  state.cursor = cursor;
  if (context && can('admin')) reader.follow(context);
}

/** @type {[string, string][]} */
const HEADS = [
  ['When', ''],
  ['Token', ''],
  ['Action', ''],
  ['Target', ''],
  ['Filter', ''],
  ['Matched', 'num'],
  ['Status', ''],
];

/** @type {import('../lib/types.js').View} */
export const auditView = {
  id: 'audit',
  page: 'audit',
  tab: 'Audit',
  scope: 'admin',
  mount: () => {
    const form = el('form', { class: 'audit-filters', id: 'audit-filters' }, [
      tokenInput,
      actionInput,
      el('button', { class: 'btn', type: 'submit' }, ['Filter']),
    ]);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      state.trail = [];
      show(undefined);
    });
    older.addEventListener('click', () => {
      if (!state.next) return;
      state.trail.push(state.cursor);
      show(state.next);
    });
    newer.addEventListener('click', () => show(state.trail.pop()));
    return el('section', { class: 'card', id: 'audit-card' }, [
      el('div', { class: 'card-head' }, [el('h2', { text: 'Audit log' }), note]),
      form,
      consoleTable(HEADS, rows, [empty]),
      el('div', { class: 'pager' }, [newer, pageLabel, older]),
      el('p', {
        class: 'muted small',
        text: 'Every operator action (retry, cancel, pause, resume, run now, bulk), refusals included; enqueues and dry-run counts are not recorded.',
      }),
    ]);
  },
  start(ctx) {
    context = ctx;
    show(state.cursor);
  },
  route: () => show(state.cursor),
  stop: () => reader.stop(),
};
