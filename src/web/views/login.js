// views/login.js — the sign-in form: email and password → a token for this tab.

import { h, replace } from '../dom.js';
import { field, formError, onSubmit } from './forms.js';

/**
 * Renders the login form into `root`.
 * @param {HTMLElement} root
 * @param {{ message?: string|null, signIn: (email: string, password: string) => Promise<void> }} o
 *   `message` explains why we are here (an expired session); `signIn` throws an ApiError on failure.
 */
export function renderLogin(root, { message, signIn }) {
  const form = h(
    'form',
    { class: 'card login', id: 'login-form', novalidate: true, 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    message ? h('p', { class: 'notice', role: 'alert', id: 'login-message' }, message) : null,
    field({ name: 'email', label: 'Email', type: 'email', autocomplete: 'username', required: true }),
    field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password', required: true }),
    formError(),
    h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in'),
  );
  onSubmit(form, async ({ email, password }) => {
    await signIn(email, password);
  });
  replace(root, h('div', { class: 'login-wrap' }, form));
  document.title = 'Sign in · Dashboard';
  form.querySelector('input').focus();
}
