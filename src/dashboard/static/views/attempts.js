// The attempt timeline at the bottom of the task panel (slot 'detail-extra'): the running
// attempt first, with the node running it, then every finished attempt of the task's
// attempt_history, newest first: outcome, node, when and how long, the error and its stack.
// It reads only what the panel's stream pushes (GET /tasks/:id/events carries the history).

import { el } from '../lib/dom.js';
import { duration, localTime } from '../lib/format.js';

/** @typedef {import('../lib/types.js').Task} Task */
/** @typedef {import('../lib/types.js').Attempt} Attempt */

/** What each outcome is called on screen, and the badge colour it borrows. */
const OUTCOMES = /** @type {const} */ ({
  completed: { text: 'Completed', badge: 'completed' },
  error: { text: 'Error', badge: 'failed' },
  timeout: { text: 'Timed out', badge: 'failed' },
  lease_lost: { text: 'Lease lost', badge: 'queued' },
  cancelled: { text: 'Cancelled', badge: 'cancelled' },
});

const list = el('ol', { class: 'timeline', id: 'attempts-list' });
const note = el('p', { class: 'muted small', id: 'attempts-note' });
/** The task shown; a response without a history (retry, cancel) keeps the one shown. */
let shown = { id: '', history: /** @type {Attempt[]} */ ([]) };

/** @param {string | null} from @param {string | null} to */
const took = (from, to) => (from && to ? duration(Date.parse(to) - Date.parse(from)) : '–');

/** @param {Attempt} a */
function entry(a) {
  const outcome = OUTCOMES[a.outcome];
  const started = a.started_at ?? a.claimed_at;
  const details = [
    el('div', { class: 'attempt-head' }, [
      el('span', { class: `badge badge-${outcome.badge}`, text: outcome.text }),
      el('span', { class: 'attempt-number', text: `Attempt ${a.attempt}` }),
      el('span', { class: 'muted small', text: `${localTime(started)} · ${took(started, a.finished_at)}` }),
    ]),
    el('div', { class: 'mono small muted attempt-node', text: a.node ? `on ${a.node}` : 'no node recorded' }),
  ];
  if (a.started_at === null && a.outcome !== 'completed')
    details.push(el('div', { class: 'muted small', text: 'its handler never started' }));
  if (a.error) details.push(el('pre', { class: 'code code-error attempt-error', text: a.error }));
  if (a.stack)
    details.push(
      el('details', { class: 'attempt-stack' }, [
        el('summary', { class: 'small', text: 'Stack' }),
        el('pre', { class: 'code small', text: a.stack }),
      ]),
    );
  return el('li', { class: 'attempt', dataset: { outcome: a.outcome } }, details);
}

/** The attempt running now, with its node. @param {Task} task */
function current(task) {
  const started = task.started_at ?? task.claimed_at;
  return el('li', { class: 'attempt', dataset: { outcome: 'running' } }, [
    el('div', { class: 'attempt-head' }, [
      el('span', { class: 'badge badge-running', text: task.started_at ? 'Running' : 'Claimed' }),
      el('span', { class: 'attempt-number', text: `Attempt ${task.attempts}` }),
      el('span', { class: 'muted small', text: `since ${localTime(started)}` }),
    ]),
    el('div', { class: 'mono small muted attempt-node', text: task.node ? `on ${task.node}` : '' }),
  ]);
}

/** @param {Task | null} task */
function render(task) {
  if (!task) {
    shown = { id: '', history: [] };
    list.replaceChildren();
    return;
  }
  if (task.attempt_history !== undefined || task.id !== shown.id)
    shown = { id: task.id, history: task.attempt_history ?? [] };
  const items = [...shown.history].reverse().map(entry);
  if (task.status === 'running') items.unshift(current(task));
  list.replaceChildren(...items);
  note.textContent =
    items.length === 0
      ? 'No attempt yet.'
      : task.attempts > shown.history.length + (task.status === 'running' ? 1 : 0)
        ? 'Older attempts were dropped (--attempt-history keeps the newest).'
        : '';
}

/** @type {import('../lib/types.js').View} */
export const attemptsView = {
  id: 'attempts',
  slot: 'detail-extra',
  mount: () =>
    el('section', { class: 'attempts', id: 'attempts' }, [el('h3', { text: 'Attempts' }), list, note]),
  task: (task) => render(task),
};
