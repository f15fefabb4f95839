// The URL is the dashboard's state: which view, the task filter, the page of tasks (cursor) and
// the open task. Every change goes through navigate() (history.pushState), so reload restores the
// view and back/forward walk through it. The cursors of the pages before this one ride in
// history.state (not the URL), for "Newer"; a shared link starts its trail afresh.

/**
 * @typedef {object} Route
 * @property {string} view  the registry's view on screen (`?view=`; 'tasks' by default)
 * @property {Record<string, string>} filter  GET /tasks filter, exactly the URL's other keys
 * @property {string | null} cursor  next_cursor of the page before, or null on the first page
 * @property {string[]} trail  cursors of the pages before this one ('' is the first), for Newer
 * @property {string | null} task  the id of the task open in the panel
 */

export const HOME = 'tasks';
/** Query keys the dashboard keeps for itself; every other key is a task filter. */
const OWN = { view: 'view', cursor: 'cursor', task: 'task' };

/**
 * URL <-> filter: every query key but the dashboard's own is a filter key, forwarded to GET /tasks
 * (and back into the URL) as it is, so the filter grammar can grow on the server (`id`,
 * `data.k=v`, time ranges...) with no change here. Unknown keys come back as a 400 from the API.
 * @param {URLSearchParams} params
 * @returns {Record<string, string>}
 */
export function filterOf(params) {
  /** @type {Record<string, string>} */
  const filter = {};
  const own = Object.values(OWN);
  for (const [key, value] of params) if (!own.includes(key) && value !== '') filter[key] = value;
  return filter;
}

/** @param {Location | URL} url @param {unknown} state history.state @returns {Route} */
export function routeOf(url, state) {
  const params = new URLSearchParams(url.search);
  const trail =
    state && typeof state === 'object' && 'trail' in state && Array.isArray(state.trail)
      ? state.trail.map(String)
      : [];
  const cursor = params.get(OWN.cursor);
  return {
    view: params.get(OWN.view) || HOME,
    filter: filterOf(params),
    cursor,
    // A deep link to a later page has no trail: Newer goes back to the first page.
    trail: cursor ? (trail.length > 0 ? trail : ['']) : [],
    task: params.get(OWN.task),
  };
}

/** @param {Route} route @returns {string} the query string, `?...` or '' */
export function searchOf(route) {
  const params = new URLSearchParams(route.filter);
  if (route.view !== HOME) params.set(OWN.view, route.view);
  if (route.cursor) params.set(OWN.cursor, route.cursor);
  if (route.task) params.set(OWN.task, route.task);
  const search = params.toString();
  return search ? `?${search}` : '';
}

/** The same filter and cursor: the same page of tasks. @param {Route} a @param {Route} b */
export const samePage = (a, b) =>
  a.cursor === b.cursor &&
  new URLSearchParams(a.filter).toString() === new URLSearchParams(b.filter).toString();

/** @typedef {(route: Route, previous: Route) => void} RouteListener */

/** @type {RouteListener[]} */
const listeners = [];
let current = routeOf(location, history.state);

export const router = {
  /** @returns {Route} */
  get route() {
    return current;
  },
  /** @param {RouteListener} listener */
  listen(listener) {
    listeners.push(listener);
  },
  /**
   * Moves to `change` applied to the current route; a new filter starts again at the first page.
   * @param {Partial<Route>} change
   * @param {{ replace?: boolean }} [options] replace the history entry instead of adding one
   */
  navigate(change, { replace = false } = {}) {
    const next = { ...current, ...change };
    if (change.filter) Object.assign(next, { cursor: change.cursor ?? null, trail: change.trail ?? [] });
    const url = `${location.pathname}${searchOf(next)}`;
    if (replace) history.replaceState({ trail: next.trail }, '', url);
    else history.pushState({ trail: next.trail }, '', url);
    emit(next);
  },
};

/** @param {Route} next */
function emit(next) {
  const previous = current;
  current = next;
  for (const listener of listeners) listener(current, previous);
}

window.addEventListener('popstate', (event) => emit(routeOf(location, event.state)));
