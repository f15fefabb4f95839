// The Schedules page: every recurring task with its state, cron, next and last run (the last
// run's task opens in the panel), and Pause/Resume and Run now, each confirmed, from GET
// /schedules; re-read every few seconds while the page is shown. A Run now click sends an
// Idempotency-Key of its own, so a request the browser repeats queues the run once.

import { api, AuthError } from '../lib/api.js';
import { pageReader } from '../lib/page-reader.js';
import { confirmAction } from '../lib/confirm.js';
import { el } from '../lib/dom.js';
import { ago, localTime, messageOf } from '../lib/format.js';

/** @typedef {import('../lib/types.js').Context} Context */
/** @typedef {import('../lib/types.js').ScheduleItem} ScheduleItem */
/** @typedef {import('../lib/types.js').ScheduleRunItem} ScheduleRunItem */

const rows = el('tbody', { id: 'schedule-rows' });
const note = el('span', { class: 'muted small', id: 'schedules-note', 'aria-live': 'polite' });
const empty = el('p', {
  class: 'empty',
  id: 'schedules-empty',
  text: 'No schedules: start taskq with --schedules schedules.json.',
  hidden: '',
});

/** @param {ScheduleItem} s @param {Context} ctx */
function row(s, ctx) {
  const toggle = el('button', {
    class: s.paused ? 'btn btn-small' : 'btn btn-small btn-danger',
    type: 'button',
    dataset: { toggle: s.name, scope: 'operate' },
    text: s.paused ? 'Resume' : 'Pause',
  });
  toggle.addEventListener('click', () => void act(s, s.paused ? 'resume' : 'pause', ctx));
  const run = el('button', {
    class: 'btn btn-small',
    type: 'button',
    dataset: { run: s.name, scope: 'operate' },
    text: 'Run now',
  });
  run.addEventListener('click', () => void act(s, 'run', ctx));
  const last = s.last_task_id
    ? el('button', { class: 'link-button', type: 'button', title: s.last_task_id, text: ago(s.last_run_at) })
    : el('span', { class: 'muted', text: 'never' });
  if (s.last_task_id) {
    const id = s.last_task_id;
    last.addEventListener('click', () => ctx.router.navigate({ task: id }));
  }
  return el('tr', { dataset: { schedule: s.name, paused: String(s.paused) } }, [
    el('td', { text: s.name }),
    el('td', {}, [
      el('span', {
        class: `badge badge-${s.paused ? 'paused' : 'active'}`,
        text: s.paused ? 'paused' : 'active',
      }),
    ]),
    el('td', {}, [
      el('span', { class: 'mono', text: s.cron }),
      el('span', { class: 'muted small', text: ` ${s.timezone}` }),
    ]),
    el('td', { text: s.action }),
    el('td', {
      class: s.paused ? 'muted' : '',
      title: localTime(s.next_run_at),
      text: s.paused ? 'skipped while paused' : ago(s.next_run_at),
    }),
    el('td', {}, [last]),
    el('td', { class: 'col-act' }, [toggle, ' ', run]),
  ]);
}

/** @param {ScheduleItem} s @param {'pause' | 'resume' | 'run'} verb @param {Context} ctx */
async function act(s, verb, ctx) {
  const asks = {
    pause: {
      title: `Pause ${s.name}?`,
      text: 'No node queues its ticks until it is resumed; the ticks it skips are not caught up.',
      confirm: 'Pause',
      danger: true,
    },
    resume: { title: `Resume ${s.name}?`, text: 'Its next tick is queued again.', confirm: 'Resume' },
    run: {
      title: `Run ${s.name} now?`,
      text: `Queues one ${s.action} task now, as a tick would.`,
      confirm: 'Run now',
    },
  };
  if (!(await confirmAction(asks[verb]))) return;
  const path = `/schedules/${encodeURIComponent(s.name)}/${verb}`;
  try {
    if (verb === 'run') {
      /** @type {ScheduleRunItem} */
      const ran = await api(path, { method: 'POST', headers: { 'idempotency-key': crypto.randomUUID() } });
      note.textContent = `Queued task ${ran.task.id.slice(0, 8)}.`;
      ctx.refresh();
    } else {
      await api(path, { method: 'POST' });
      note.textContent = `${s.name} ${verb === 'pause' ? 'paused' : 'resumed'}.`;
    }
  } catch (err) {
    if (!(err instanceof AuthError)) note.textContent = messageOf(err);
  }
  await reader.load();
}

/** @type {Context | null} */
let context = null;
const reader = pageReader(
  /** @type {{ page: string, path: string, note: HTMLElement, render: (answer: { schedules: ScheduleItem[] }) => void }} */ ({
    page: 'schedules',
    path: '/schedules',
    note,
    render: (answer) => {
      if (!context) return;
      const ctx = context;
      rows.replaceChildren(...answer.schedules.map((item) => row(item, ctx)));
      empty.hidden = answer.schedules.length > 0;
    },
  }),
);

const HEADS = ['Name', 'State', 'Cron', 'Action', 'Next run', 'Last run', ''];

/** @type {import('../lib/types.js').View} */
export const schedulesView = {
  id: 'schedules',
  page: 'schedules',
  tab: 'Schedules',
  mount: () =>
    el('section', { class: 'card', id: 'schedules-card' }, [
      el('div', { class: 'card-head' }, [el('h2', { text: 'Schedules' }), note]),
      el('div', { class: 'table-wrap' }, [
        el('table', { class: 'tasks console' }, [
          el('thead', {}, [
            el(
              'tr',
              {},
              HEADS.map((text) => el('th', { text })),
            ),
          ]),
          rows,
        ]),
        empty,
      ]),
      el('p', {
        class: 'muted small',
        text: 'Pauses and last runs are kept in the database: every node and every restart sees them.',
      }),
    ]),
  start(ctx) {
    context = ctx;
    reader.follow(ctx);
  },
  route: (_route, _previous, ctx) => reader.follow(ctx),
  stop: () => reader.stop(),
};
