// Keyboard shortcuts, one table for every view: a view adds its keys with addShortcut() and the
// `?` overlay lists them all. None fires while the user types in a field or holds a modifier.

import { el } from './dom.js';

/**
 * @typedef {object} Shortcut
 * @property {string} key  KeyboardEvent.key ('j', '/', 'Enter', 'Escape', '?')
 * @property {string} [help]  what it does, for the `?` overlay (none: not listed)
 * @property {(event: KeyboardEvent) => void} run
 * @property {() => boolean} [when]  only then (else the next shortcut with this key may run)
 */

/** @type {Shortcut[]} */
const shortcuts = [];

/** @param {Shortcut} shortcut */
export function addShortcut(shortcut) {
  shortcuts.push(shortcut);
}

/** @param {EventTarget | null} target */
function typing(target) {
  return (
    // A ticked checkbox keeps the focus: j, k and x still work from there.
    (target instanceof HTMLInputElement && !['checkbox', 'radio'].includes(target.type)) ||
    target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement ||
    (target instanceof HTMLElement && target.isContentEditable)
  );
}

/** How a key is shown in the overlay. @param {string} key */
const keyName = (key) => ({ Escape: 'Esc', Enter: 'Enter' })[key] ?? key;

const help = el('div', {
  id: 'help',
  class: 'overlay',
  hidden: '',
  role: 'dialog',
  'aria-label': 'Shortcuts',
});
help.addEventListener('click', (event) => {
  if (event.target === help) help.hidden = true;
});
document.body.append(help);

/** Opens the overlay that lists every shortcut. */
export function showHelp() {
  /** @type {Map<string, string[]>} one row per help text, its keys together (j, k) */
  const rows = new Map();
  for (const s of shortcuts) if (s.help) rows.set(s.help, [...(rows.get(s.help) ?? []), keyName(s.key)]);
  const list = el(
    'dl',
    { class: 'keys' },
    [...rows].flatMap(([text, keys]) => [
      el(
        'dt',
        {},
        keys.map((k) => el('kbd', { text: k })),
      ),
      el('dd', { text: text }),
    ]),
  );
  const note = el('p', {
    class: 'muted small',
    text: 'Esc or a click outside closes this list. None of them works while you type in a field.',
  });
  help.replaceChildren(
    el('div', { class: 'card help' }, [el('h2', { text: 'Keyboard shortcuts' }), list, note]),
  );
  help.hidden = false;
}

addShortcut({ key: '?', help: 'Show these shortcuts', run: showHelp });
addShortcut({ key: 'Escape', when: () => !help.hidden, run: () => (help.hidden = true) });

document.addEventListener('keydown', (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || typing(event.target))
    return;
  const shortcut = shortcuts.find((s) => s.key === event.key && (!s.when || s.when()));
  if (!shortcut) return;
  event.preventDefault();
  shortcut.run(event);
});
