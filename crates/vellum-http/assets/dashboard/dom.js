// Small DOM helpers shared by every page and component (the dashboard, the Admin Portal, the
// embedded viewer): elements built with textContent and createElement only (server data never
// becomes HTML), labelled fields, times, list fields, error boxes and copying.

/**
 * Creates an element. `attrs`: `class`, `text`, `dataset`, `on: {event: handler}`, boolean
 * properties (`hidden`, `disabled`, `checked`, `required`, `readOnly`, `open`, `selected`,
 * `multiple`), `value`, and any other attribute by name. Children: nodes, strings (as text),
 * arrays, and null/undefined/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (name === 'text') node.textContent = String(value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name === 'on') for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (['hidden', 'disabled', 'checked', 'required', 'readOnly', 'open', 'selected', 'multiple'].includes(name)) node[name] = Boolean(value);
    else if (name === 'value') node.value = String(value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let uniqueCounter = 0;
/** A document-unique id for label/aria wiring. */
export function uniqueId(prefix = 'v') {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled form field: `<div class="field"><label>…</label><input>…<p class="hint">…</p></div>`. */
export function field(label, control, hint) {
  if (!control.id) control.id = uniqueId('field');
  let hintNode = null;
  if (hint) {
    hintNode = h('p', { class: 'hint', id: `${control.id}-hint`, text: hint });
    control.setAttribute('aria-describedby', hintNode.id);
  }
  return h('div', { class: 'field' }, h('label', { for: control.id, text: label }), control, hintNode);
}

/** Formats a wire timestamp for people, in the browser's time zone. */
export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (number, width = 2) => String(number).padStart(width, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** A `<time>` element showing local time, with the exact UTC time in `datetime` and the tooltip. */
export function timeElement(iso) {
  return h('time', { datetime: iso, title: iso, text: formatTime(iso) });
}

/** `datetime-local` value (local time) → `…Z`, or '' when empty; throws when unreadable. */
export function localInputToIso(value) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new Error(`"${value}" is not a date and time`);
  return date.toISOString();
}

/** Splits a comma-separated field into trimmed, non-empty values. */
export function splitList(text) {
  return String(text ?? '')
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
}

/**
 * Renders an error of the server (an ApiError) or any other error into `box`: the message, and
 * one item per field error. `box` should be a `role="alert"` element.
 */
export function showError(box, error, prefix) {
  box.replaceChildren();
  if (!error) {
    box.hidden = true;
    return;
  }
  const message = (error && error.message) || String(error);
  box.append(h('p', { text: prefix ? `${prefix}: ${message}` : message }));
  const fields = typeof error.fieldMessages === 'function' ? error.fieldMessages() : [];
  if (fields.length) box.append(h('ul', {}, fields.map((text) => h('li', { text }))));
  box.hidden = false;
}

/** Copies text to the clipboard, saying so in `status`. */
export async function copyText(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    if (status) status.textContent = 'Copied.';
  } catch {
    if (status) status.textContent = 'Copying is not allowed here: select the text and copy it.';
  }
}
