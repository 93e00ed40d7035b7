// app.js — the dashboard's entry point: decides between the login form and a signed-in
// view (super admin or business owner), and returns to the login form when the session
// ends (sign out, or an expired token: a REST 401, a 4401 close, or the `exp` timer).

import { createApi } from './api.js';
import { h, replace } from './dom.js';
import { loadSession, saveSession, clearSession, takeFlash, tokenExpiry, tokenClaims } from './session.js';
import { renderLogin } from './views/login.js';
import { renderShell } from './views/shell.js';
import { mountAdmin } from './views/admin.js';
import { mountOwner } from './views/owner.js';

const EXPIRED = 'Your session has expired. Please sign in again.';
/** How long before the token expires the top bar offers to extend the session (at most a
 * quarter of the token's lifetime, so a fresh short-lived token is not renewed at once). */
const RENEW_BEFORE_MS = 2 * 60 * 1000;

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');

let session = loadSession();
/** What the signed-in view needs to tear down: `{ shell, unmount, timer }`. */
let signedIn = null;

const api = createApi({
  getToken: () => session?.token ?? null,
  onUnauthorized: () => endSession(EXPIRED),
});

/** Leaves the signed-in view; `message` is shown on the login form. */
function endSession(message) {
  if (signedIn) {
    clearTimeout(signedIn.timer);
    clearTimeout(signedIn.renewTimer);
    signedIn.unmount?.();
    signedIn.shell.destroy();
    signedIn = null;
  }
  session = null;
  clearSession(message);
  showLogin();
}

function showLogin() {
  topbar.hidden = true;
  renderLogin(main, {
    message: takeFlash(),
    signIn: async (email, password) => {
      const res = await api.login(email, password);
      saveSession(res.access, res.user);
      session = loadSession();
      await showDashboard();
    },
  });
}

async function showDashboard() {
  if (!session) {
    showLogin();
    return;
  }
  let user = session.user;
  try {
    // Also proves the stored token still works before anything opens a socket.
    user = await api.me();
  } catch (err) {
    if (err.status === 401) return; // onUnauthorized already went back to the login form
    replace(main, h('section', { class: 'card' },
      h('p', { class: 'notice', role: 'alert' }, `Could not reach the server: ${err.message}`),
      h('button', { type: 'button', class: 'btn', onclick: showDashboard }, 'Try again')));
    return;
  }
  const shell = renderShell(topbar, {
    user,
    title: user.role === 'super_admin' ? 'Platform dashboard' : 'My business',
    onSignOut: () => endSession(null),
  });
  const ctx = {
    api,
    user,
    getToken: () => session?.token ?? null,
    onStop: (reason) => {
      // 4401: the token expired or was refused; other final closes leave the page as it is,
      // with the status saying Offline.
      if (reason === 'unauthenticated') endSession(EXPIRED);
    },
  };
  signedIn = { shell, unmount: null, timer: null, renewTimer: null };
  signedIn.unmount = user.role === 'super_admin' ? mountAdmin(main, shell, ctx) : mountOwner(main, shell, ctx);
  scheduleExpiry(user);
  main.focus({ preventScroll: true });
}

/**
 * Leaves when the token expires, even if nothing else notices first, and offers renewal
 * shortly before. Renewal signs in again as the same user and hands the new token to the
 * open channel, so the live connection survives.
 */
function scheduleExpiry(user) {
  clearTimeout(signedIn.timer);
  clearTimeout(signedIn.renewTimer);
  const exp = tokenExpiry(session.token);
  if (exp === null) return;
  const ms = exp * 1000 - Date.now();
  if (ms >= 2 ** 31) return; // beyond what setTimeout can wait
  signedIn.timer = setTimeout(() => endSession(EXPIRED), Math.max(0, ms));
  const iat = tokenClaims(session.token)?.iat;
  const lead = typeof iat === 'number' ? Math.min(RENEW_BEFORE_MS, ((exp - iat) * 1000) / 4) : RENEW_BEFORE_MS;
  signedIn.renewTimer = setTimeout(() => {
    signedIn?.shell.offerRenewal(exp * 1000, async (password) => {
      const res = await api.login(user.email, password);
      if (res.user?.id !== user.id) throw new Error('That is another account.');
      saveSession(res.access, res.user);
      session = loadSession();
      signedIn.shell.useToken(res.access);
      scheduleExpiry(user);
    });
  }, Math.max(0, ms - lead));
}

showDashboard();
