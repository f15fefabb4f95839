// The taskq dashboard: vanilla JS modules over the HTTP API, no build step. This entry wires the
// views of views/registry.js to the sign-in, the URL (lib/router.js), the live stats stream and
// each other. The statuses and which of them may be retried or cancelled come from GET /meta.

import { api, AuthError, openStream, token, whenUnauthorized } from './lib/api.js';
import { $, $input, el } from './lib/dom.js';
import { messageOf } from './lib/format.js';
import { HOME, router } from './lib/router.js';
import { showHelp } from './lib/shortcuts.js';
import { setUpTheme } from './lib/theme.js';
import { VIEWS } from './views/registry.js';
import { setAccess } from './lib/access.js';

/** @typedef {import('./lib/types.js').Meta} Meta */
/** @typedef {import('./lib/types.js').Stats} Stats */
/** @typedef {import('./lib/types.js').View} View */

/** @type {import('./lib/types.js').Context} */
const ctx = {
  meta: {
    statuses: [],
    finished: [],
    actions: { retry: [], cancel: [] },
    bulk: { retry: [], cancel: [], delete: [] },
    version: '',
    token: null,
  },
  router,
  refresh: () => each((view) => view.refresh?.(ctx)),
  showTask: (task) => each((view) => view.task?.(task, ctx)),
};

/** @param {(view: View) => void} fn */
function each(fn) {
  for (const view of VIEWS) {
    try {
      fn(view);
    } catch (err) {
      // One broken view must not take the others down.
      console.error(`taskq: view ${view.id} failed`, err);
    }
  }
}

/** @type {Map<View, HTMLElement>} */
const roots = new Map();
/** @type {AbortController | null} */
let statsStream = null;
let started = false;

function mount() {
  setUpTheme();
  $('help-button').addEventListener('click', showHelp);
  for (const view of VIEWS) {
    const root = view.mount(ctx);
    if (view.scope) root.dataset.scope = view.scope;
    if (!root.isConnected) $(view.slot ?? 'main').append(root);
    roots.set(view, root);
  }
  const tabs = VIEWS.filter((view) => view.tab);
  $('tabs').replaceChildren(
    ...tabs.map((view) => {
      const link = el(
        'a',
        {
          class: 'tab',
          href: `?view=${view.page}`,
          dataset: { page: view.page ?? HOME, ...(view.scope && { scope: view.scope }) },
        },
        [view.tab ?? ''],
      );
      link.addEventListener('click', (event) => {
        event.preventDefault();
        router.navigate({ view: view.page ?? HOME });
      });
      return link;
    }),
  );
  $('tabs').hidden = tabs.length < 2;
  showPage();
}

/** Only the views of the URL's page are shown; views with no page (the task panel) stay. */
function showPage() {
  const page = router.route.view;
  for (const [view, root] of roots) if (view.page) root.hidden = view.page !== page;
  for (const tab of $('tabs').querySelectorAll('a'))
    tab.toggleAttribute('aria-current', tab.dataset.page === page);
}

router.listen((route, previous) => {
  showPage();
  if (started) each((view) => view.route?.(route, previous, ctx));
});

// ---- Sign in ----

/** @param {string} message */
function showLogin(message) {
  stop();
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('login-error').hidden = !message;
  $('login-token').focus();
}
whenUnauthorized(showLogin);

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token.set($input('login-token').value.trim());
  $input('login-token').value = '';
  $('login').hidden = true;
  void start();
});

$('sign-out').addEventListener('click', () => {
  token.clear();
  $('sign-out').hidden = true;
  showLogin('');
});

// ---- Live stats ----

/** @param {boolean} on */
function setLive(on) {
  $('live').dataset.state = on ? 'on' : 'off';
  $('live').textContent = on ? 'live' : 'reconnecting';
}

/** @param {Stats} stats */
const pushStats = (stats) => each((view) => view.stats?.(stats, ctx));

function followStats() {
  statsStream?.abort();
  statsStream = openStream('/events/stats', {
    // The stream sends what GET /stats answers (same schema on the server).
    event: (name, data) => name === 'stats' && pushStats(/** @type {Stats} */ (JSON.parse(data))),
    live: setLive,
    dropped: (err) => console.warn('taskq: the live stats stream dropped; reconnecting', err),
  });
}

function stop() {
  started = false;
  statsStream?.abort();
  statsStream = null;
  each((view) => view.stop?.());
}

// ---- Start ----

async function start() {
  /** @type {Stats} */
  let stats;
  try {
    /** @type {[Meta, Stats]} */
    const [meta, first] = await Promise.all([api('/meta'), api('/stats')]);
    ctx.meta = meta;
    setAccess(meta);
    stats = first;
  } catch (err) {
    if (!(err instanceof AuthError)) $('table-note').textContent = messageOf(err);
    return;
  }
  $('sign-out').hidden = !token.get();
  started = true;
  const loads = await Promise.allSettled(VIEWS.map(async (view) => view.start?.(ctx)));
  loads.forEach((load, i) => {
    if (load.status === 'rejected') console.error(`taskq: view ${VIEWS[i]?.id} failed to start`, load.reason);
  });
  pushStats(stats);
  followStats();
}

mount();
void start();
