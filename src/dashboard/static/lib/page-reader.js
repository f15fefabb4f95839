// Reads one GET route for a page of its own and re-reads it every few seconds while that page is
// shown (the console's Actions and Schedules pages): the answer goes to `render`, an error to the
// page's note. Only the newest request's answer is shown.

import { api, AuthError } from './api.js';
import { messageOf } from './format.js';

const REFRESH_MS = 3000;

/**
 * @template T
 * @param {{ page: string, path: string | (() => string), note: HTMLElement, render: (answer: T) => void }} options
 *   `path` is read at each load when it is a function (a page that moves through pages of its own)
 */
export function pageReader({ page, path, note, render }) {
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  let loads = 0;
  const stop = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const load = async () => {
    const mine = ++loads;
    /** @type {T} */
    let answer;
    try {
      answer = await api(typeof path === 'function' ? path() : path);
    } catch (err) {
      if (!(err instanceof AuthError) && mine === loads) note.textContent = messageOf(err);
      return;
    }
    if (mine === loads) render(answer);
  };
  /** Starts (or stops) re-reading as the URL's page is (or is not) this one. @param {import('./types.js').Context} ctx */
  const follow = (ctx) => {
    stop();
    if (ctx.router.route.view !== page) return;
    const tick = async () => {
      await load();
      if (ctx.router.route.view === page) timer = setTimeout(() => void tick(), REFRESH_MS);
    };
    void tick();
  };
  return { load, follow, stop };
}
