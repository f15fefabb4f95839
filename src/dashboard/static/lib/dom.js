// DOM helpers. Task fields are user data, so they are only ever written with textContent, never
// as HTML: el() has no innerHTML path.

/**
 * @template {HTMLElement} E
 * @param {string} id
 * @param {{ new (): E, name: string }} type
 * @returns {E}
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`dashboard: #${id} is missing or not a ${type.name}`);
  return node;
}
/** @param {string} id */
export const $ = (id) => byId(id, HTMLElement);
/** @param {string} id */
export const $button = (id) => byId(id, HTMLButtonElement);
/** @param {string} id */
export const $input = (id) => byId(id, HTMLInputElement);
/** @param {string} id */
export const $select = (id) => byId(id, HTMLSelectElement);

/**
 * @param {string} tag
 * @param {Record<string, string | Record<string, string>>} [props] `text` sets textContent, `dataset` data-*
 * @param {(Node | string)[]} [children]
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (typeof value === 'object') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/** @param {string} status */
export const badge = (status) => el('span', { class: `badge badge-${status}`, text: status });

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An SVG element appended to `parent` (attributes as given, text only through textContent).
 * @param {Element | null} parent
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 * @returns {SVGElement}
 */
export function svgEl(parent, tag, attrs = {}, text) {
  const node = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  parent?.append(node);
  return node;
}

/**
 * The console pages' table in its scrolling wrapper: a head row of `[text, class]` cells, `body`,
 * then `after` (an empty-state line).
 * @param {[string, string][]} heads
 * @param {HTMLElement} body
 * @param {HTMLElement[]} [after]
 */
export const consoleTable = (heads, body, after = []) =>
  el('div', { class: 'table-wrap' }, [
    el('table', { class: 'tasks console' }, [
      el('thead', {}, [
        el(
          'tr',
          {},
          heads.map(([text, cls]) => el('th', { class: cls, text })),
        ),
      ]),
      body,
    ]),
    ...after,
  ]);
