// The task panel: the URL's open task, live. It follows GET /tasks/:id/events (the server pushes
// the task on each change and ends the stream once the task is finished), so progress and status
// update without re-reading the task; the stream closes with the panel.

import { api, ApiError, AuthError, openStream } from '../lib/api.js';
import { $, $button, badge, el } from '../lib/dom.js';
import { duration, json, localTime, messageOf, waitingForSlot } from '../lib/format.js';
import { addShortcut } from '../lib/shortcuts.js';

/** @typedef {import('../lib/types.js').Task} Task */
/** @typedef {import('../lib/types.js').Context} Context */

/** @type {{ stream: AbortController | null, task: Task | null }} */
const state = { stream: null, task: null };

/** @param {string} name @param {string} value */
const fact = (name, value) => [el('dt', { text: name }), el('dd', { text: value })];

/** @param {string} text @param {'info' | 'error'} [kind] */
function showMessage(text, kind = 'info') {
  const box = $('detail-message');
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

/** @param {Task} task @param {Context} ctx */
function render(task, ctx) {
  state.task = task;
  $('detail').dataset.status = task.status;
  $('detail-body').hidden = false;
  $('detail-title').textContent = task.action;
  $('detail-id').textContent = task.id;
  $('detail-status').replaceWith(Object.assign(badge(task.status), { id: 'detail-status' }));
  /** @param {string | null | undefined} a @param {string | null | undefined} b */
  const ms = (a, b) => (a && b ? Date.parse(b) - Date.parse(a) : null);
  const waiting = waitingForSlot(task);
  $('detail-facts').replaceChildren(
    ...fact('Attempts', `${task.attempts} of ${task.max_attempts}`),
    ...fact('Priority', String(task.priority)),
    ...(task.progress === null
      ? []
      : fact('Progress', `${task.progress}%${task.progress_message ? ` · ${task.progress_message}` : ''}`)),
    ...fact('Created', localTime(task.created_at)),
    ...fact('Run at', localTime(task.run_at)),
    // Servers without claimed_at claim and start in one step: Started says it all there.
    ...(task.claimed_at === undefined ? [] : fact('Claimed', localTime(task.claimed_at))),
    ...fact('Started', waiting ? 'claimed, waiting for a slot' : localTime(task.started_at)),
    ...fact('Finished', localTime(task.processed_at)),
    ...fact('Waited', duration(ms(task.created_at, task.started_at))),
    // Handler time only: from the real start, not the claim; '–' until both ends are known.
    ...fact('Ran', duration(ms(task.started_at, task.processed_at))),
  );
  $('detail-error-wrap').hidden = !task.error;
  $('detail-error').textContent = task.error || '';
  $('detail-data').textContent = json(task.data);
  $('detail-result').textContent = json(task.result);
  $button('detail-retry').disabled = !ctx.meta.actions.retry.includes(task.status);
  $button('detail-cancel').disabled = !ctx.meta.actions.cancel.includes(task.status);
  ctx.showTask(task);
}

function stop() {
  state.stream?.abort();
  state.stream = null;
}

/** Shows `id` and follows its stream; the stream ends when the task finishes. @param {string} id @param {Context} ctx */
function follow(id, ctx) {
  stop();
  $('detail').hidden = false;
  state.stream = openStream(`/tasks/${encodeURIComponent(id)}/events`, {
    event: (name, data) => {
      // The stream sends what GET /tasks/:id answers (same schema on the server).
      if (name === 'task') render(/** @type {Task} */ (JSON.parse(data)), ctx);
    },
    again: () => state.task?.id !== id || !ctx.meta.finished.includes(state.task.status),
    dropped: (err) => console.warn('taskq: the task stream dropped; reconnecting', err),
    refused: (err) => {
      state.task = null;
      $('detail-body').hidden = true;
      $('detail-title').textContent = 'Task';
      $('detail-id').textContent = id;
      showMessage(err.status === 404 ? `No task with id "${id}".` : err.message, 'error');
      ctx.showTask(null);
    },
  });
}

/** @param {'retry' | 'cancel'} verb @param {Context} ctx */
async function act(verb, ctx) {
  const id = state.task?.id;
  if (!id) return;
  try {
    /** @type {Task} */
    const task = await api(`/tasks/${encodeURIComponent(id)}/${verb}`, { method: 'POST' });
    showMessage(
      verb === 'retry'
        ? 'Queued again.'
        : task.status === 'cancelled'
          ? 'Cancelled.'
          : 'Cancel requested; the handler is being stopped.',
    );
    render(task, ctx);
  } catch (err) {
    if (!(err instanceof AuthError)) showMessage(messageOf(err), err instanceof ApiError ? 'error' : 'info');
  }
  // A retried task runs again: follow it anew (its earlier stream ended when it finished).
  if (ctx.router.route.task === id) follow(id, ctx);
  ctx.refresh();
}

/** @param {Context} ctx */
function close(ctx) {
  if (ctx.router.route.task) ctx.router.navigate({ task: null });
}

/** @param {string | null} id @param {Context} ctx */
function open(id, ctx) {
  if (id === null) {
    stop();
    state.task = null;
    $('detail').hidden = true;
    ctx.showTask(null);
    return;
  }
  showMessage('');
  follow(id, ctx);
}

/** @type {import('../lib/types.js').View} */
export const taskPanelView = {
  id: 'task-panel',
  mount(ctx) {
    $('detail-retry').addEventListener('click', () => void act('retry', ctx));
    $('detail-cancel').addEventListener('click', () => void act('cancel', ctx));
    $('detail-close').addEventListener('click', () => close(ctx));
    addShortcut({
      key: 'Escape',
      help: 'Close the task panel',
      when: () => !$('detail').hidden,
      run: () => close(ctx),
    });
    return $('detail');
  },
  start(ctx) {
    open(ctx.router.route.task, ctx);
  },
  route(route, previous, ctx) {
    if (route.task !== previous.task) open(route.task, ctx);
  },
  stop,
};
