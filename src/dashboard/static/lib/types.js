// Types only (JSDoc, checked by `tsc -p tsconfig.dashboard.json`): the server's own types, named
// once for every module. Nothing imports this file at run time.

/** @typedef {import('../../../api/routes/meta.js').Meta} Meta */
/** @typedef {import('../../../api/schemas.js').Stats} Stats */
/** @typedef {import('../../../core/task.js').TaskStatus} TaskStatus */
/**
 * A task as GET /tasks shows it. `claimed_at` is newer than some servers: absent there, and a
 * running task with `started_at === null` is claimed but waiting for a free slot in its worker.
 * @typedef {import('../../../api/schemas.js').TaskView} Task
 */
/** @typedef {{ tasks: Task[], next_cursor: string | null }} TaskPage */
/** A neighbour in a task's graph (GET /tasks/:id). @typedef {import('../../../api/schemas.js').GraphNodeView} GraphNode */
/** One finished attempt of a task's attempt_history. @typedef {import('../../../api/schemas.js').AttemptView} Attempt */
/** GET /nodes. @typedef {import('../../../api/schemas.js').NodeListView} NodeList */
/** @typedef {import('../../../api/console-schemas.js').ActionItem} ActionItem */
/** @typedef {import('../../../api/console-schemas.js').ScheduleItem} ScheduleItem */
/** @typedef {import('../../../api/console-schemas.js').ScheduleRunItem} ScheduleRunItem */

export {};

/**
 * What every view is handed: the server's vocabulary, the URL state and the page's events.
 * @typedef {object} Context
 * @property {Meta} meta  GET /meta, read at each sign-in
 * @property {typeof import('./router.js').router} router  the URL state: router.route, router.navigate()
 * @property {() => void} refresh  this page changed tasks (retry, cancel...): every view's refresh() runs
 * @property {(task: Task | null) => void} showTask  the task panel's task changed (live): every view's task() runs
 */

/**
 * One view or component of the dashboard, listed once in views/registry.js. Every hook is optional
 * but mount.
 * @typedef {object} View
 * @property {string} id
 * @property {string} [page]  the page it shows on (`?view=<page>`; 'tasks' is the home page); none: every page
 * @property {string} [tab]  label of its page in the top bar's navigation (a page of its own)
 * @property {import('./access.js').Scope} [scope]  the scope its page (and tab) needs; hidden without it (lib/access.js)
 * @property {string} [slot]  id of the element its root goes in when mount() builds a new one (default 'main')
 * @property {(ctx: Context) => HTMLElement} mount  once, at load: wire the DOM, return the root element
 * @property {(ctx: Context) => void | Promise<void>} [start]  signed in, ctx.meta read: load data
 * @property {(route: import('./router.js').Route, previous: import('./router.js').Route, ctx: Context) => void} [route]  the URL changed
 * @property {(stats: Stats, ctx: Context) => void} [stats]  GET /events/stats pushed new statistics
 * @property {(task: Task | null, ctx: Context) => void} [task]  the open task changed, or the panel closed
 * @property {(ctx: Context) => void} [refresh]  tasks changed through this page
 * @property {() => void} [stop]  signed out or the token was refused: close streams
 */
