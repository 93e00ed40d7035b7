// app.js — the dashboard's entry point: decides between the login form and a signed-in
// view (super admin or business owner), keeps the session alive with the refresh token
// (renewal.js), and returns to the login form when the session ends (sign out here or in
// another tab, or a renewal the server refuses).

import { createApi } from './api.js';
import { h, replace } from './dom.js';
import { loadSession, saveSession, clearSession, takeFlash, onSessionChange, withRenewLock, readSession } from './session.js';
import { createRenewer } from './renewal.js';
import { renderLogin } from './views/login.js';
import { renderShell } from './views/shell.js';
import { mountAdmin } from './views/admin.js';
import { mountOwner } from './views/owner.js';
import { mountPushToggle, disablePush } from './views/push.js';
import { applyDeepLink, registerServiceWorker } from './pwa.js';

const EXPIRED = 'Your session has expired. Please sign in again.';
/** A channel refused with 4401 again this soon after a restart means the renewal did not help. */
const RESTART_GUARD_MS = 30_000;

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');

let session = loadSession();
/** What the signed-in view needs to tear down: `{ shell, unmount }`. */
let signedIn = null;
let lastRestart = 0;

const renewer = createRenewer({
  refresh: (token) => api.refresh(token),
  onToken: useSession,
  onRefused: () => endSession(EXPIRED),
});

const api = createApi({
  getToken: () => session?.token ?? null,
  renew: (stale) => renewer.renew(stale),
  onUnauthorized: () => endSession(EXPIRED),
});

// Another tab renewed (take its token) or signed out (follow it).
onSessionChange((stored) => {
  if (!session) return;
  if (!stored) endSession(null);
  else if (stored.token !== session.token) useSession(stored);
});

/** A newer token for the same login: REST uses it from now on, the open channel switches to it. */
function useSession(next) {
  if (!session || next.token === session.token) return;
  session = next;
  signedIn?.shell.useToken(next.token);
  renewer.schedule(next.token);
}

/** Tears down the signed-in view, keeping the session. */
function unmountView() {
  if (!signedIn) return;
  signedIn.unmount?.();
  signedIn.shell.destroy();
  signedIn = null;
}

/** Leaves the signed-in view; `message` is shown on the login form. */
function endSession(message) {
  if (!session) return; // already ended (a refused renewal and the 401 that asked for it)
  unmountView();
  renewer.stop();
  session = null;
  clearSession(message);
  showLogin();
}

/** Revokes the refresh token on the server, then forgets the session (every tab follows). */
async function signOut() {
  if (!session) return;
  // While the token still works: this device stops getting this person's notifications.
  await disablePush(api, session.user);
  renewer.stop();
  // Under the renewal lock, so no other tab rotates the token between reading and revoking it.
  await withRenewLock(async () => {
    const refresh = readSession()?.refresh;
    if (!refresh) return;
    try {
      await api.logout(refresh);
    } catch {
      // Unreachable server: forget the token here anyway; it expires on its own.
    }
  });
  endSession(null);
}

function showLogin() {
  topbar.hidden = true;
  renderLogin(main, {
    message: takeFlash(),
    signIn: async (email, password) => {
      const res = await api.login(email, password);
      saveSession(res);
      session = loadSession();
      renewer.resume();
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
    // Also proves (or renews) the stored token before anything opens a socket.
    user = await api.me();
  } catch (err) {
    if (err.status === 401) return; // onUnauthorized already went back to the login form
    replace(main, h('section', { class: 'card' },
      h('p', { class: 'notice', role: 'alert' }, `Could not reach the server: ${err.message}`),
      h('button', { type: 'button', class: 'btn', onclick: showDashboard }, 'Try again')));
    return;
  }
  if (!session) return;
  const shell = renderShell(topbar, {
    user,
    title: user.role === 'super_admin' ? 'Platform dashboard' : 'My business',
    onSignOut: signOut,
  });
  const ctx = {
    api,
    user,
    getToken: () => session?.token ?? null,
    onStop: (reason) => {
      // Other final closes leave the page as it is, with the status saying Offline.
      if (reason === 'unauthenticated') unauthenticated();
    },
  };
  signedIn = { shell, unmount: null };
  const rightSide = topbar.querySelector('.topbar-right');
  if (rightSide) mountPushToggle(rightSide, { api, user });
  signedIn.unmount = user.role === 'super_admin' ? mountAdmin(main, shell, ctx) : mountOwner(main, shell, ctx);
  renewer.schedule(session.token);
  main.focus({ preventScroll: true });
}

/**
 * The channel closed with 4401: the token expired before its renewal (a device that slept)
 * or was refused. One renewal, then the view starts again with the new token; a second
 * 4401 soon after means renewing does not help, and the session ends.
 */
async function unauthenticated() {
  const stale = session?.token ?? null;
  const fresh = Date.now() - lastRestart > RESTART_GUARD_MS ? await renewer.renew(stale) : null;
  if (!session) return;
  if (!fresh) {
    endSession(EXPIRED);
    return;
  }
  lastRestart = Date.now();
  unmountView();
  await showDashboard();
}

applyDeepLink();
registerServiceWorker();
showDashboard();
