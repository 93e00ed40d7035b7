// session.js — the signed-in session, kept in sessionStorage (one per tab, gone when the tab
// closes), and a one-shot message for the login form ("your session has expired").

const TOKEN_KEY = 'app.token';
const USER_KEY = 'app.user';
const FLASH_KEY = 'app.flash';

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

/** The stored session `{token, user}`, or null when absent or already expired. */
export function loadSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  let user = null;
  try {
    user = JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
  } catch {
    user = null;
  }
  const exp = tokenExpiry(token);
  if (exp !== null && exp * 1000 <= Date.now()) {
    clearSession('Your session has expired. Please sign in again.');
    return null;
  }
  return { token, user };
}

/** Keeps the token and user returned by `POST /api/auth/token/`. */
export function saveSession(token, user) {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(USER_KEY, JSON.stringify(user || null));
}

/** Forgets the session; `message`, when given, is shown once by the login form. */
export function clearSession(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (message) sessionStorage.setItem(FLASH_KEY, message);
}

/** Returns and forgets the one-shot login message. */
export function takeFlash() {
  const message = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  return message;
}
