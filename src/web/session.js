// session.js — the signed-in session: access token, refresh token and user, kept in
// localStorage, plus a one-shot message for the login form (sessionStorage, per tab).
//
// Why localStorage: an owner leaves the dashboard open all day, often in several tabs. One
// shared session means one refresh-token family per browser, renewed by one tab at a time
// (`withRenewLock`) and adopted by the others through the `storage` event; per-tab storage
// would instead copy a refresh token into every duplicated tab, and the first rotation would
// make the copy a "reused" token that revokes the whole family (API.md, reuse detection).
// Signing out in one tab signs out all of them, as a person expects. The CSP allows no
// script but ours, which is what guards either storage against theft.

const TOKEN_KEY = 'app.token';
const REFRESH_KEY = 'app.refresh';
const USER_KEY = 'app.user';
const FLASH_KEY = 'app.flash';
const LOCK_KEY = 'app.renew-lock';
/** The Web Locks name that serialises refreshes across tabs. */
const LOCK_NAME = 'app.renew';
/** The fallback lock is considered abandoned after this long (a tab closed while holding it). */
const LOCK_LEASE_MS = 20_000;

/** The claims of a JWT, read without verifying it (the server verifies); null when unreadable. */
export function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

/** The `exp` claim (seconds) of a JWT; null when unreadable. */
export function tokenExpiry(token) {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === 'number' ? exp : null;
}

/**
 * When (ms since the epoch) a token is due for renewal: at `fraction` of its lifetime
 * (from `iat` to `exp`), so a renewal that fails has time for retries before expiry.
 * Null when the token carries no readable lifetime.
 */
export function renewalDue(token, fraction = 0.8) {
  const claims = tokenClaims(token);
  if (typeof claims?.exp !== 'number') return null;
  const iat = typeof claims.iat === 'number' ? claims.iat : claims.exp - 3600;
  return (iat + (claims.exp - iat) * fraction) * 1000;
}

/** The stored session `{token, refresh, user}` as is, or null when there is none. */
export function readSession() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  let user = null;
  try {
    user = JSON.parse(localStorage.getItem(USER_KEY) || 'null');
  } catch {
    user = null;
  }
  return { token, refresh: localStorage.getItem(REFRESH_KEY), user };
}

/**
 * The stored session, or null when absent or expired with no refresh token to renew it
 * (then the login form says so). An expired access token with a refresh token is kept:
 * the first request renews it.
 */
export function loadSession() {
  const session = readSession();
  if (!session) return null;
  const exp = tokenExpiry(session.token);
  if (exp !== null && exp * 1000 <= Date.now() && !session.refresh) {
    clearSession('Your session has expired. Please sign in again.');
    return null;
  }
  return session;
}

/** Keeps what `POST /api/auth/token/` or `/api/auth/refresh/` answered. */
export function saveSession({ access, refresh, user }) {
  localStorage.setItem(TOKEN_KEY, access);
  if (refresh) localStorage.setItem(REFRESH_KEY, refresh);
  if (user) localStorage.setItem(USER_KEY, JSON.stringify(user));
}

/** Forgets the session (in every tab); `message`, when given, is shown once by this tab's login form. */
export function clearSession(message) {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(REFRESH_KEY);
  localStorage.removeItem(USER_KEY);
  if (message) sessionStorage.setItem(FLASH_KEY, message);
}

/** Returns and forgets the one-shot login message. */
export function takeFlash() {
  const message = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  return message;
}

/**
 * Calls `fn(session)` whenever another tab changes the stored session (a renewal: the new
 * session; a sign-out: null). Returns the function that stops listening.
 */
export function onSessionChange(fn) {
  const listener = (e) => {
    if (e.storageArea !== localStorage || (e.key !== TOKEN_KEY && e.key !== null)) return;
    fn(readSession());
  };
  window.addEventListener('storage', listener);
  return () => window.removeEventListener('storage', listener);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `fn` while no other tab of this origin runs its own: a refresh token may be presented
 * only once, so two tabs must never refresh at the same moment. Web Locks where the browser
 * has them (secure contexts, which include http://localhost); elsewhere a lease in
 * localStorage, claimed, then re-read after a pause to see whether another tab claimed it too.
 */
export async function withRenewLock(fn) {
  if (typeof navigator !== 'undefined' && navigator.locks?.request) {
    return navigator.locks.request(LOCK_NAME, () => fn());
  }
  const me = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  for (;;) {
    const held = (localStorage.getItem(LOCK_KEY) || '').split(' ');
    if (!held[0] || Number(held[1]) < Date.now()) {
      localStorage.setItem(LOCK_KEY, `${me} ${Date.now() + LOCK_LEASE_MS}`);
      await sleep(50 + Math.random() * 50);
      if ((localStorage.getItem(LOCK_KEY) || '').startsWith(`${me} `)) break;
    }
    await sleep(100 + Math.random() * 100);
  }
  try {
    return await fn();
  } finally {
    if ((localStorage.getItem(LOCK_KEY) || '').startsWith(`${me} `)) localStorage.removeItem(LOCK_KEY);
  }
}
