// dom.js — tiny DOM helpers shared by every view.
//
// Text always goes in through textContent / text nodes, never innerHTML: business names,
// customer names and messages come from users and may contain markup.

/**
 * Creates an element. `props` sets attributes (`class`, `for`, `aria-*`, `data-*`, ...),
 * properties for a few names (`value`, `checked`, `disabled`, `hidden`), and listeners for
 * `on<event>` keys. Children are nodes or strings (strings become text nodes).
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...(Node|string|number|null|undefined|false)} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden') {
      el[key] = value;
    } else if (key === 'text') {
      el.textContent = String(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, nested arrays; falsy values are skipped). */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Sets the text of `el` only when it changed (keeps screen readers quiet otherwise). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

/**
 * Renders `items` into `container`, reusing the element of each key so focus and
 * scroll positions survive live updates. `create(item)` builds a new element;
 * `update(el, item)` refreshes an existing one.
 */
export function keyedList(container, items, key, create, update) {
  const existing = new Map();
  for (const el of container.children) existing.set(el.dataset.key, el);
  const wanted = items.map((item) => {
    const k = String(key(item));
    let el = existing.get(k);
    if (el) update(el, item);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    existing.delete(k);
    return el;
  });
  for (const el of existing.values()) el.remove();
  wanted.forEach((el, i) => {
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
  });
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'short',
});
const clockFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

/** "Feb 14, 2026, 6:30 PM" for an RFC 3339 string; the input itself when unparsable. */
export function formatDateTime(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value ?? '') : timeFormat.format(d);
}

/** "6:30:12 PM" for an RFC 3339 string. */
export function formatClock(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : clockFormat.format(d);
}

/** A `<time>` element showing `value` formatted, with the machine value kept. */
export function timeEl(value, format = formatDateTime) {
  return h('time', { datetime: value }, format(value));
}

/** Shows a short message in the page's toast region (announced to screen readers). */
export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  region.append(item);
  setTimeout(() => item.remove(), 5000);
}
