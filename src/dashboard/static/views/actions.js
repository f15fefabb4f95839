// The Actions page: every action with its pause (and a Pause/Resume button, confirmed), counts,
// throughput, failure rate, run-time p50/p95, oldest queued age and flow-control settings (rate
// limit, per-key cap), from GET /actions, re-read every few seconds while the page is shown.
// An action's name opens the task table filtered to it.

import { api, AuthError } from '../lib/api.js';
import { pageReader } from '../lib/page-reader.js';
import { confirmAction } from '../lib/confirm.js';
import { consoleTable, el } from '../lib/dom.js';
import { duration, messageOf, number } from '../lib/format.js';

/** @typedef {import('../lib/types.js').Context} Context */
/** @typedef {import('../lib/types.js').ActionItem} ActionItem */

const rows = el('tbody', { id: 'action-rows' });
const note = el('span', { class: 'muted small', id: 'actions-note', 'aria-live': 'polite' });
const empty = el('p', { class: 'empty', id: 'actions-empty', text: 'No actions yet.', hidden: '' });

/** @param {number | null} rate */
const percent = (rate) => (rate === null ? '–' : `${(rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0)} %`);
/** @param {number | null} ms */
const ms = (ms) => (ms === null ? '–' : ms >= 1000 ? duration(ms) : `≤ ${ms} ms`);

/** @param {ActionItem} a */
function rateLimit(a) {
  if (!a.rate_limit) return '–';
  return `${a.rate_limit.per_second}/s, burst ${a.rate_limit.burst}`;
}

/** @param {ActionItem} a @param {Context} ctx */
function row(a, ctx) {
  const name = el('button', {
    class: 'link-button',
    type: 'button',
    text: a.action,
    title: 'Show its tasks',
  });
  name.addEventListener('click', () => ctx.router.navigate({ view: 'tasks', filter: { action: a.action } }));
  const toggle = el('button', {
    class: a.paused ? 'btn btn-small' : 'btn btn-small btn-danger',
    type: 'button',
    dataset: { toggle: a.action, scope: 'operate' },
    text: a.paused ? 'Resume' : 'Pause',
  });
  toggle.addEventListener('click', () => void setPaused(a, !a.paused));
  const badgeOf = el('span', {
    class: `badge badge-${a.paused ? 'paused' : 'active'}`,
    text: a.paused ? 'paused' : 'active',
    title: a.paused_at ? `paused since ${new Date(a.paused_at).toLocaleString()}` : '',
  });
  const cell = (/** @type {string} */ text, cls = 'num') => el('td', { class: cls, text });
  return el('tr', { dataset: { action: a.action, paused: String(a.paused) } }, [
    el('td', {}, [
      name,
      ...(a.registered ? [] : [el('span', { class: 'muted small', text: ' no handler' })]),
    ]),
    el('td', {}, [badgeOf]),
    cell(number(a.counts.queued)),
    cell(number(a.counts.running)),
    cell(number(a.counts.completed)),
    cell(number(a.counts.failed)),
    cell(String(a.last_5m.completed_per_minute)),
    cell(percent(a.last_60m.failure_rate)),
    cell(`${ms(a.run_ms_p50)} / ${ms(a.run_ms_p95)}`),
    cell(a.oldest_queued_age_ms === null ? '–' : duration(a.oldest_queued_age_ms)),
    cell(rateLimit(a), ''),
    cell(a.concurrency_per_key === null ? '–' : String(a.concurrency_per_key)),
    el('td', { class: 'col-act' }, [toggle]),
  ]);
}

/** @param {ActionItem} a @param {boolean} pause */
async function setPaused(a, pause) {
  const ok = await confirmAction(
    pause
      ? {
          title: `Pause ${a.action}?`,
          text: `No node claims its tasks until it is resumed: ${number(a.counts.queued)} queued will wait; ${number(a.counts.running)} running finish.`,
          confirm: 'Pause',
          danger: true,
        }
      : {
          title: `Resume ${a.action}?`,
          text: `Workers on every node claim its ${number(a.counts.queued)} queued tasks again.`,
          confirm: 'Resume',
        },
  );
  if (!ok) return;
  try {
    await api(`/actions/${encodeURIComponent(a.action)}/${pause ? 'pause' : 'resume'}`, { method: 'POST' });
    note.textContent = pause ? `${a.action} paused.` : `${a.action} resumed.`;
  } catch (err) {
    if (!(err instanceof AuthError)) note.textContent = messageOf(err);
  }
  await reader.load();
}

/** @type {Context | null} */
let context = null;
const reader = pageReader(
  /** @type {{ page: string, path: string, note: HTMLElement, render: (answer: { actions: ActionItem[] }) => void }} */ ({
    page: 'actions',
    path: '/actions',
    note,
    render: (answer) => {
      if (!context) return;
      const ctx = context;
      rows.replaceChildren(...answer.actions.map((item) => row(item, ctx)));
      empty.hidden = answer.actions.length > 0;
    },
  }),
);

/** @type {[string, string][]} */
const HEADS = [
  ['Action', ''],
  ['State', ''],
  ['Queued', 'num'],
  ['Running', 'num'],
  ['Completed', 'num'],
  ['Failed', 'num'],
  ['Done/min (5 min)', 'num'],
  ['Failed (1 h)', 'num'],
  ['Run p50 / p95', 'num'],
  ['Oldest queued', 'num'],
  ['Rate limit', ''],
  ['Per key', 'num'],
  ['', ''],
];

/** @type {import('../lib/types.js').View} */
export const actionsView = {
  id: 'actions',
  page: 'actions',
  tab: 'Actions',
  mount: () =>
    el('section', { class: 'card', id: 'actions-card' }, [
      el('div', { class: 'card-head' }, [el('h2', { text: 'Actions' }), note]),
      consoleTable(HEADS, rows, [empty]),
      el('p', {
        class: 'muted small',
        text: 'Pausing stops claims on every node at once; queued tasks wait and running ones finish. Run times are the upper bounds of their buckets.',
      }),
    ]),
  start(ctx) {
    context = ctx;
    reader.follow(ctx);
  },
  route: (_route, _previous, ctx) => reader.follow(ctx),
  stop: () => reader.stop(),
};
