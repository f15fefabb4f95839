// What the signed-in token may do, from GET /meta's `token` (docs/security.md): every scope when
// the service runs without tokens. One generic mechanism hides what it may not: any element with
// `data-scope="operate"` (or read, enqueue, admin) is hidden unless <body> has the class
// `can-operate`, which setAccess() sets per allowed scope (style.css, "Scopes"). Before the first
// /meta answer <body> has none, so nothing scoped shows until the server said it may. Hiding is
// for the operator's convenience; the server checks every request anyway (403).

/** @typedef {'read' | 'enqueue' | 'operate' | 'admin'} Scope */

/** @type {readonly Scope[]} */
export const SCOPES = ['read', 'enqueue', 'operate', 'admin'];

/** @type {Set<Scope>} */
let allowed = new Set();

/** @param {import('./types.js').Meta} meta */
export function setAccess(meta) {
  allowed = new Set(meta.token ? meta.token.scopes : SCOPES);
  for (const scope of SCOPES) document.body.classList.toggle(`can-${scope}`, allowed.has(scope));
}

/** Whether the token may do what `scope` guards. @param {Scope} scope */
export const can = (scope) => allowed.has(scope);
