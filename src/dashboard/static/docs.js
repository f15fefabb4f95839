// Renders /openapi.json as a plain list of operations. Uses the dashboard's token if it has one.
'use strict';

/**
 * The parts of an OpenAPI document this page reads.
 * @typedef {{ summary?: string, description?: string, tags?: string[], responses?: Record<string, unknown> }} Operation
 * @typedef {{ info: { title: string, version: string, description?: string }, paths: Record<string, Record<string, Operation>> }} OpenApiDoc
 */

void (async () => {
  const root = document.getElementById('docs');
  if (!root) throw new Error('docs: #docs is missing');
  /** @param {string} tag @param {string} cls @param {string} [text] */
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const token = sessionStorage.getItem('taskq.token');
  const res = await fetch('/openapi.json', { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) {
    root.replaceChildren(
      el(
        'p',
        'error',
        res.status === 401
          ? 'Sign in on the dashboard first (this service needs a token).'
          : `openapi.json answered ${res.status}`,
      ),
    );
    return;
  }
  // GET /openapi.json answers what @fastify/swagger generates: an OpenAPI 3.1 document.
  const doc = /** @type {OpenApiDoc} */ (await res.json());
  const head = el('section', 'card');
  head.append(
    el('h2', '', `${doc.info.title} ${doc.info.version}`),
    el('p', 'muted', doc.info.description || ''),
  );
  const cards = [head];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const card = el('section', 'card');
      const title = el('div', 'card-head');
      const h = el('h2', 'mono', `${method.toUpperCase()} ${path}`);
      title.append(h, el('span', 'muted small', (op.tags || []).join(', ')));
      card.append(title, el('p', '', op.summary || ''));
      if (op.description) card.append(el('p', 'muted', op.description));
      const codes = Object.keys(op.responses || {}).join(', ');
      if (codes) card.append(el('p', 'small muted', `Responses: ${codes}`));
      cards.push(card);
    }
  }
  root.replaceChildren(...cards);
})();
