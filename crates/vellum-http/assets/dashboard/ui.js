// Small pieces of page shared by the operator dashboard and the Admin Portal: the status line,
// error boxes, busy buttons, scrolling tables, pagers and confirmation dialogs.

import { h, uniqueId } from './dom.js';

/** Shows `text` in the page's status line (`#status`), or hides it when empty. */
export function announce(text, kind = 'info') {
  const region = document.getElementById('status');
  if (!region) return;
  region.textContent = text ?? '';
  region.dataset.kind = kind;
  region.classList.toggle('is-visible', Boolean(text));
}

/** An alert box that `showError` fills (hidden while empty). */
export function errorBox() {
  return h('div', { class: 'error-box', role: 'alert', hidden: true });
}

/** Marks a button busy (disabled) while a request it started runs. */
export function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', on ? 'true' : 'false');
}

/** A table in a scrolling, focusable region. */
export function tableWrap(label, table) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
}

export function pager(label, onPrevious, onNext, previousText = 'Previous', nextText = 'Next') {
  const previous = h('button', { type: 'button', class: 'button', disabled: true, text: previousText, on: { click: onPrevious } });
  const next = h('button', { type: 'button', class: 'button', disabled: true, text: nextText, on: { click: onNext } });
  const node = h('nav', { class: 'pager', 'aria-label': label }, previous, next);
  return {
    node,
    update(metadata) {
      previous.disabled = !(metadata && metadata.before);
      next.disabled = !(metadata && metadata.after);
    },
  };
}

/** A modal confirmation; answers true when confirmed. */
export function confirmDialog({ title, message, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const titleId = uniqueId('confirm');
    const confirm = h('button', { type: 'button', class: ['button', danger ? 'danger' : 'primary'], text: confirmLabel });
    const cancel = h('button', { type: 'button', class: 'button', text: 'Cancel' });
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, text: title }),
      h('p', { text: message }),
      h('div', { class: 'form-actions' }, confirm, cancel),
    );
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    confirm.addEventListener('click', () => finish(true));
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('close', () => finish(false));
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
