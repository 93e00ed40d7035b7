// views/forms.js — labelled fields, server validation errors shown at the field, and a
// confirmation dialog. Used by the login form, the business forms and the booking page.

import { h } from '../dom.js';

let uid = 0;

/**
 * A labelled input with a slot for its error. `opts` are input attributes plus `label` and
 * `hint`. The input gets `aria-describedby` pointing at the error (and hint) so a screen
 * reader reads the server's message with the field.
 */
export function field({ label, hint, ...attrs }) {
  const id = attrs.id || `f-${attrs.name}-${++uid}`;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h(attrs.type === 'textarea' ? 'textarea' : 'input', {
    ...attrs,
    type: attrs.type === 'textarea' ? undefined : attrs.type || 'text',
    id,
    'aria-describedby': [hintId, errorId].filter(Boolean).join(' '),
  });
  return h(
    'div',
    { class: 'field', 'data-field': attrs.name },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }),
  );
}

/** A form-level error line (for errors that belong to no single field). */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

/** The form's values as an object of trimmed strings (passwords untrimmed). */
export function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    values[el.name] = el.type === 'password' ? el.value : el.value.trim();
  }
  return values;
}

/** Clears every field and form-level error of `form`. */
export function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error, .form-error')) {
    p.textContent = '';
    p.hidden = true;
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/**
 * Shows an ApiError on `form`: each `fields` entry under its input (focusing the first),
 * anything else as the form-level message. A 409 without fields is placed on the field its
 * message names (`subdomain`, `email`), since that is what a conflict is about.
 */
export function showErrors(form, err) {
  clearErrors(form);
  const fields = { ...(err.fields || {}) };
  if (err.code === 'conflict' && !Object.keys(fields).length) {
    const msg = String(err.message || '').toLowerCase();
    const named = ['subdomain', 'owner_email', 'email'].find(
      (name) => msg.includes(name.replace('owner_', '')) && form.querySelector(`[data-field="${name}"]`),
    );
    if (named) fields[named] = err.message;
  }
  let first = null;
  for (const [name, message] of Object.entries(fields)) {
    const wrap = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (!wrap) continue;
    const p = wrap.querySelector('.field-error');
    p.textContent = message;
    p.hidden = false;
    const input = wrap.querySelector('input, textarea, select');
    input.setAttribute('aria-invalid', 'true');
    first = first || input;
  }
  if (first) {
    first.focus();
    return;
  }
  const p = form.querySelector('.form-error');
  if (p) {
    p.textContent = err.message || 'Something went wrong.';
    p.hidden = false;
  }
}

/**
 * Wires `form`'s submit: clears errors, disables the submit button while `action(values)`
 * runs, and shows the server's errors at the fields when it throws.
 */
export function onSubmit(form, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const buttons = form.querySelectorAll('button[type=submit]');
    buttons.forEach((b) => (b.disabled = true));
    form.setAttribute('aria-busy', 'true');
    try {
      await action(formValues(form));
    } catch (err) {
      showErrors(form, err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      form.removeAttribute('aria-busy');
    }
  });
}

/**
 * A modal `<dialog>` holding `content`, appended to the body. Esc closes it and focus
 * returns to what had it; `close()` removes it.
 */
export function modal(title, ...content) {
  const headingId = `dlg-${++uid}`;
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': headingId }, h('h2', { id: headingId }, title), ...content);
  const opener = document.activeElement;
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** Asks a yes/no question in a modal; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel, danger = true }) {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, confirmLabel);
    const no = h('button', { type: 'button', class: 'btn' }, 'Keep it');
    const dialog = modal(title, h('p', {}, message), h('div', { class: 'actions' }, no, yes));
    // Answer on the click itself: a dialog's `close` event waits for the next rendering
    // step, which a browser delays in a background tab.
    yes.addEventListener('click', () => {
      resolve(true);
      dialog.close();
    });
    no.addEventListener('click', () => {
      resolve(false);
      dialog.close();
    });
    dialog.addEventListener('close', () => resolve(false)); // Esc; a no-op once answered
    no.focus();
  });
}
