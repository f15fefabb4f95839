// The taskq dashboard: vanilla JS over the HTTP API. Task fields are user data, so they are only
// ever written with textContent, never as HTML. Only one page of tasks is fetched at a time.
// The statuses and which of them may be retried or cancelled come from GET /meta, not from here.
// Types: JSDoc checked by `tsc -p tsconfig.dashboard.json`, naming the server's own types.
'use strict';

/** @typedef {import('../../api/routes/meta.js').Meta} Meta */
/** @typedef {import('../../api/schemas.js').Stats} Stats */
/** @typedef {import('../../core/task.js').TaskStatus} TaskStatus */
/**
 * A task as GET /tasks shows it. `claimed_at` is newer than some servers: absent there, and a
 * running task with `started_at === null` is claimed but waiting for a free slot in its worker.
 * @typedef {import('../../api/schemas.js').TaskView} Task
 */
/** @typedef {{ tasks: Task[], next_cursor: string | null }} TaskPage */

(() => {
  const TOKEN_KEY = 'taskq.token';
  const PAGE_SIZE = 25;

  /**
   * @template {HTMLElement} E
   * @param {string} id
   * @param {{ new (): E, name: string }} type
   * @returns {E}
   */
  function byId(id, type) {
    const node = document.getElementById(id);
    if (!(node instanceof type)) throw new Error(`dashboard: #${id} is missing or not a ${type.name}`);
    return node;
  }
  /** @param {string} id */
  const $ = (id) => byId(id, HTMLElement);
  /** @param {string} id */
  const $button = (id) => byId(id, HTMLButtonElement);
  /** @param {string} id */
  const $input = (id) => byId(id, HTMLInputElement);
  /** @param {string} id */
  const $select = (id) => byId(id, HTMLSelectElement);

  class AuthError extends Error {}

  /** An error answer of the API, with its HTTP status. */
  class ApiError extends Error {
    /** @param {string} message @param {number} status */
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** @param {unknown} err */
  const messageOf = (err) => (err instanceof Error ? err.message : String(err));

  const state = {
    /** @type {Meta} read once at start from GET /meta */
    meta: { statuses: [], finished: [], actions: { retry: [], cancel: [] }, version: '' },
    /** @type {TaskStatus | ''} */
    status: '',
    action: '',
    /** @type {(string | undefined)[]} cursor of each page visited; the last is the current page */
    cursors: [undefined],
    /** @type {string | null} */
    nextCursor: null,
    /** @type {string | null} */
    detailId: null,
    /** @type {Set<string>} */
    actions: new Set(),
    /** @type {AbortController | null} of the live stream */
    stream: null,
    /** @type {ReturnType<typeof setTimeout> | null} */
    refreshTimer: null,
  };

  // ---- API ----

  /** @returns {Record<string, string>} */
  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  /**
   * @template T the answer's type, which the route's response schema fixes on the server
   * @param {string} path
   * @param {RequestInit} [options]
   * @returns {Promise<T>}
   */
  async function api(path, options = {}) {
    const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...options.headers } });
    if (res.status === 401) {
      showLogin(sessionStorage.getItem(TOKEN_KEY) ? 'That token was not accepted.' : '');
      throw new AuthError('unauthorized');
    }
    /** @type {unknown} */
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const error = body && typeof body === 'object' && 'error' in body ? String(body.error) : '';
      throw new ApiError(error || `${res.status} ${res.statusText}`, res.status);
    }
    // The server serialises every answer through its response schema, so the shape is T.
    return /** @type {T} */ (body);
  }

  // ---- Sign in ----

  /** @param {string} message */
  function showLogin(message) {
    stopStream();
    $('login').hidden = false;
    $('login-error').textContent = message;
    $('login-error').hidden = !message;
    $('login-token').focus();
  }

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $input('login-token').value.trim());
    $input('login-token').value = '';
    $('login').hidden = true;
    void start();
  });

  $('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('sign-out').hidden = true;
    showLogin('');
  });

  // ---- Formatting ----

  /** @param {number | null | undefined} ms */
  function duration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
  }

  /** @param {string | null | undefined} iso */
  function ago(iso) {
    if (!iso) return '–';
    const ms = Date.now() - Date.parse(iso);
    if (ms < 0) return `in ${duration(-ms)}`;
    return ms < 1000 ? 'just now' : `${duration(ms).split(' ').slice(0, 2).join(' ')} ago`;
  }

  /** @param {number} n */
  const number = (n) => new Intl.NumberFormat().format(n);
  /** @param {unknown} value */
  const json = (value) => (value === null || value === undefined ? '—' : JSON.stringify(value, null, 2));
  /** 'queued' -> 'Queued' @param {string} word */
  const label = (word) => word.charAt(0).toUpperCase() + word.slice(1);

  /**
   * @param {string} tag
   * @param {Record<string, string | Record<string, string>>} [props] `text` sets textContent, `dataset` data-*
   * @param {(Node | string)[]} [children]
   */
  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (typeof value === 'object') Object.assign(node.dataset, value);
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  /** @param {TaskStatus} status */
  const badge = (status) => el('span', { class: `badge badge-${status}`, text: status });

  /** Claimed by a worker that has no free slot yet: the handler has not started. @param {Task} task */
  const waitingForSlot = (task) => task.status === 'running' && task.started_at === null;

  // ---- Statuses (from GET /meta) ----

  /** One count card per status, before the static cards, and one filter option per status. */
  function renderStatuses() {
    const cards = state.meta.statuses.map((status) => {
      const card = el('button', { class: 'count', type: 'button', dataset: { status } }, [
        el('span', { class: 'count-label', text: label(status) }),
        el('span', { class: 'count-value', text: '–', dataset: { count: status } }),
      ]);
      card.addEventListener('click', () => {
        const next = status === state.status ? '' : status;
        $select('filter-status').value = next;
        state.status = next;
        resetPaging();
      });
      return card;
    });
    $('counts')
      .querySelectorAll('.count[data-status]')
      .forEach((card) => card.remove());
    $('counts').prepend(...cards);
    $select('filter-status').replaceChildren(
      el('option', { value: '', text: 'All' }),
      ...state.meta.statuses.map((status) => el('option', { value: status, text: label(status) })),
    );
  }

  /** @param {string} value @returns {value is TaskStatus} */
  const isStatus = (value) => state.meta.statuses.some((s) => s === value);

  // ---- Counts and chart ----

  /** @param {Stats} stats */
  function renderStats(stats) {
    for (const status of state.meta.statuses) {
      const cell = document.querySelector(`[data-count="${status}"]`);
      if (cell) cell.textContent = number(stats.counts[status]);
    }
    $('oldest').textContent =
      stats.oldest_queued_age_ms === null ? '–' : duration(stats.oldest_queued_age_ms);
    const known = new Set(stats.by_action.map((a) => a.action));
    if ([...known].some((a) => !state.actions.has(a))) {
      state.actions = known;
      const select = $select('filter-action');
      select.replaceChildren(el('option', { value: '', text: 'All' }));
      for (const action of [...known].sort()) select.append(el('option', { value: action, text: action }));
      select.value = state.action;
    }
    renderChart(stats.throughput);
  }

  /** @type {Stats['throughput']} */
  let lastThroughput = [];
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
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('width', String(width));
    svg.setAttribute('height', String(height));
    /** @param {string} tag @param {Record<string, string | number>} attrs @param {string} [text] */
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    for (let i = 0; i <= 4; i++) {
      const y = pad.top + plotH - (plotH * i) / 4;
      add('line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: i === 0 ? 'axis' : 'grid' });
      add('text', { x: pad.left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, number((top * i) / 4));
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
      const g = document.createElementNS(ns, 'g');
      const title = document.createElementNS(ns, 'title');
      const time = new Date(p.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      title.textContent = `${time}: ${p.completed} completed, ${p.failed} failed`;
      g.append(title);
      svg.append(g);
      /** @param {number} y @param {number} h @param {string} cls */
      const bar = (y, h, cls) => {
        const r = document.createElementNS(ns, 'rect');
        for (const [k, v] of Object.entries({ x, y, width: barW, height: h, class: cls }))
          r.setAttribute(k, String(v));
        g.append(r);
      };
      bar(pad.top, plotH, 'hit');
      if (hc > 0) bar(base - hc, hc, 'bar-completed');
      if (hf > 0) bar(base - hc - hf, hf, 'bar-failed');
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
      add('text', { x, y: height - 6, class: 'tick', 'text-anchor': anchor }, tick);
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

  window.addEventListener('resize', () => renderChart(lastThroughput));

  // ---- Live stream (fetch, not EventSource, so the token can go in a header) ----

  /** @param {boolean} on */
  function setLive(on) {
    $('live').dataset.state = on ? 'on' : 'off';
    $('live').textContent = on ? 'live' : 'reconnecting';
  }

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  async function follow() {
    stopStream();
    const controller = new AbortController();
    state.stream = controller;
    while (!controller.signal.aborted) {
      try {
        const res = await fetch('/events/stats', { headers: authHeaders(), signal: controller.signal });
        if (res.status === 401) {
          showLogin('That token was not accepted.');
          return;
        }
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        setLive(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            onEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (err) {
        // A network error: say so in the console and retry below (an abort is ours: no retry).
        if (!controller.signal.aborted)
          console.warn('taskq: the live stats stream dropped; reconnecting', err);
      }
      setLive(false);
      if (!controller.signal.aborted) await new Promise((r) => setTimeout(r, 2000));
    }
  }

  /** @param {string} block one server-sent event */
  function onEvent(block) {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trim();
    }
    if (event !== 'stats' || !data) return;
    // The stream sends what GET /stats answers (same schema on the server).
    renderStats(/** @type {Stats} */ (JSON.parse(data)));
    scheduleRefresh();
  }

  // Counts changed: refresh what is on screen, at most every 2 s (only the first page follows live).
  function scheduleRefresh() {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      if (state.cursors.length === 1) void loadTasks();
      if (state.detailId && !$('detail').hidden) void openTask(state.detailId, { quiet: true });
    }, 2000);
  }

  // ---- Task table ----

  async function loadTasks() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.status) params.set('status', state.status);
    if (state.action) params.set('action', state.action);
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) params.set('cursor', cursor);
    /** @type {TaskPage} */
    let page;
    try {
      page = await api(`/tasks?${params}`);
    } catch (err) {
      if (!(err instanceof AuthError)) $('table-note').textContent = messageOf(err);
      return;
    }
    $('table-note').textContent = '';
    state.nextCursor = page.next_cursor;
    const rows = page.tasks.map((task) =>
      el('tr', { tabindex: '0', dataset: { id: task.id, status: task.status } }, [
        el('td', { class: 'mono', title: task.id, text: task.id.slice(0, 8) }),
        el('td', { text: task.action }),
        el('td', {}, waitingForSlot(task) ? [badge(task.status), waitingNote()] : [badge(task.status)]),
        el('td', { class: 'col-attempts', text: `${task.attempts} / ${task.max_attempts}` }),
        el('td', { class: 'col-created', title: task.created_at, text: ago(task.created_at) }),
        el('td', { class: 'col-finished', title: task.processed_at || '', text: ago(task.processed_at) }),
      ]),
    );
    $('rows').replaceChildren(...rows);
    $('empty').hidden = rows.length > 0;
    $button('newer').disabled = state.cursors.length === 1;
    $button('older').disabled = !state.nextCursor;
    $('page-label').textContent = `Page ${state.cursors.length}`;
  }

  function resetPaging() {
    state.cursors = [undefined];
    void loadTasks();
  }

  const waitingNote = () => el('span', { class: 'muted small', text: ' waiting for a slot' });

  $select('filter-status').addEventListener('change', () => {
    const value = $select('filter-status').value;
    state.status = isStatus(value) ? value : '';
    resetPaging();
  });
  $select('filter-action').addEventListener('change', () => {
    state.action = $select('filter-action').value;
    resetPaging();
  });
  $('older').addEventListener('click', () => {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    void loadTasks();
  });
  $('newer').addEventListener('click', () => {
    if (state.cursors.length > 1) state.cursors.pop();
    void loadTasks();
  });
  /** The id of the table row an event happened in, if any. @param {Event} e */
  const rowIdOf = (e) =>
    e.target instanceof Element ? e.target.closest('tr[data-id]')?.getAttribute('data-id') : null;
  $('rows').addEventListener('click', (e) => {
    const id = rowIdOf(e);
    if (id) void openTask(id);
  });
  $('rows').addEventListener('keydown', (e) => {
    const id = rowIdOf(e);
    if (id && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      void openTask(id);
    }
  });
  $('search').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $input('search-id').value.trim();
    if (id) void openTask(id);
  });

  // ---- Task panel ----

  /** @param {string} name @param {string} value */
  function fact(name, value) {
    return [el('dt', { text: name }), el('dd', { text: value })];
  }

  /** @param {string} text @param {'info' | 'error'} [kind] */
  function showMessage(text, kind = 'info') {
    const box = $('detail-message');
    box.textContent = text;
    box.dataset.kind = kind;
    box.hidden = !text;
  }

  /** @param {string | null | undefined} iso */
  const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

  /** @param {string} id @param {{ quiet?: boolean }} [options] */
  async function openTask(id, { quiet = false } = {}) {
    /** @type {Task} */
    let task;
    try {
      task = await api(`/tasks/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof AuthError || quiet) return;
      $('table-note').textContent =
        err instanceof ApiError && err.status === 404 ? `No task with id "${id}".` : messageOf(err);
      return;
    }
    state.detailId = task.id;
    if (!quiet) showMessage('');
    $('detail').hidden = false;
    $('detail').dataset.status = task.status;
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
    $button('detail-retry').disabled = !state.meta.actions.retry.includes(task.status);
    $button('detail-cancel').disabled = !state.meta.actions.cancel.includes(task.status);
  }

  /** @param {'retry' | 'cancel'} verb */
  async function act(verb) {
    const id = state.detailId;
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
    } catch (err) {
      if (!(err instanceof AuthError)) showMessage(messageOf(err), 'error');
    }
    await Promise.all([openTask(id, { quiet: true }), loadTasks()]);
  }

  $('detail-retry').addEventListener('click', () => void act('retry'));
  $('detail-cancel').addEventListener('click', () => void act('cancel'));
  $('detail-close').addEventListener('click', () => {
    $('detail').hidden = true;
    state.detailId = null;
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('detail').hidden) $button('detail-close').click();
  });

  // ---- Start ----

  async function start() {
    try {
      /** @type {[Meta, Stats]} */
      const [meta, stats] = await Promise.all([api('/meta'), api('/stats')]);
      state.meta = meta;
      renderStatuses();
      renderStats(stats);
    } catch (err) {
      if (!(err instanceof AuthError)) $('table-note').textContent = messageOf(err);
      return;
    }
    $('sign-out').hidden = !sessionStorage.getItem(TOKEN_KEY);
    await loadTasks();
    void follow();
  }

  void start();
})();
