// A confirmation before an operator action (pause, resume, run now...): a modal <dialog> that
// names what will happen; Esc or Cancel answers false. One dialog element, made on first use.

import { el } from './dom.js';

/** @type {HTMLDialogElement | null} */
let dialog = null;

/**
 * @param {{ title: string, text: string, confirm: string, danger?: boolean, dismiss?: string }} ask
 *   `dismiss` labels the button that answers false ('Cancel' unless the action is itself a cancel)
 * @returns {Promise<boolean>}
 */
export function confirmAction(ask) {
  dialog ??= /** @type {HTMLDialogElement} */ (el('dialog', { class: 'confirm card', id: 'confirm' }));
  const box = dialog;
  const ok = el('button', {
    class: ask.danger ? 'btn btn-primary btn-primary-danger' : 'btn btn-primary',
    type: 'button',
    id: 'confirm-ok',
    text: ask.confirm,
  });
  const cancel = el('button', {
    class: 'btn',
    type: 'button',
    id: 'confirm-cancel',
    text: ask.dismiss ?? 'Cancel',
  });
  box.replaceChildren(
    el('h2', { text: ask.title }),
    el('p', { class: 'muted', text: ask.text }),
    el('div', { class: 'confirm-actions' }, [cancel, ok]),
  );
  if (!box.isConnected) document.body.append(box);
  return new Promise((resolve) => {
    /** @param {boolean} answer */
    const done = (answer) => {
      box.removeEventListener('close', onClose);
      if (box.open) box.close();
      resolve(answer);
    };
    const onClose = () => done(false);
    box.addEventListener('close', onClose);
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    box.showModal();
    ok.focus();
  });
}
