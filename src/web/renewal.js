// renewal.js — keeps the access token fresh with the refresh token (API.md "Sessions that
// last"): renews at 80 % of the token's lifetime and at once when the server refuses it,
// one tab at a time, and hands every new token to the app (which sends it over the open
// socket as an `auth` frame, so the socket never closes with 4401).

import { readSession, saveSession, renewalDue, withRenewLock } from './session.js';

/** After a renewal that failed for a reason other than 401 (network, 5xx, 429). */
const RETRY_MS = 5_000;
/** A token another tab just stored is taken as is if it has more than this share of its life left. */
const FRESH_SHARE = 0.2;
/**
 * How long the lock stays held after a refresh is stored. Chromium mirrors localStorage into
 * each tab's process and copies writes across asynchronously, so a tab granted the lock at
 * once could still read the refresh token just used, present it again, and have the server
 * revoke the whole login as a reuse (seen in sessions.test.js). Renewals are rare and in the
 * background: a second of waiting costs nothing.
 */
const HOLD_AFTER_REFRESH_MS = 1_000;

function stillFresh(token) {
  const due = renewalDue(token, 1 - FRESH_SHARE);
  return due === null || due > Date.now();
}

/**
 * @param {object} o
 * @param {(refresh: string) => Promise<{access: string, refresh: string, user: object}>} o.refresh
 *   `POST /api/auth/refresh/`
 * @param {(session: {token: string, refresh: string|null, user: object}) => void} o.onToken
 *   a newer token is in use (renewed here or by another tab)
 * @param {() => void} o.onRefused the session cannot be renewed (401, or signed out elsewhere)
 * @returns {{ renew(stale: string|null): Promise<string|null>, schedule(token: string): void,
 *   stop(): void, resume(): void }}
 */
export function createRenewer({ refresh, onToken, onRefused }) {
  let inflight = null;
  let timer = null;
  let stopped = false;

  /**
   * Gets a token newer than `stale`: the one another tab stored meanwhile if it is fresh,
   * else a refreshed one. Resolves to null when there is none (refused: `onRefused` has run;
   * or the server could not be reached: a retry is scheduled).
   */
  function renew(stale) {
    if (stopped) return Promise.resolve(null);
    inflight ??= withRenewLock(async () => {
      if (stopped) return null;
      const stored = readSession();
      if (!stored) {
        onRefused();
        return null;
      }
      if (stored.token !== stale && stillFresh(stored.token)) {
        onToken(stored);
        return stored.token;
      }
      if (!stored.refresh) {
        onRefused();
        return null;
      }
      let res;
      try {
        res = await refresh(stored.refresh);
      } catch (err) {
        if (err.status === 401) {
          onRefused();
        } else {
          clearTimeout(timer);
          timer = setTimeout(() => renew(stale), RETRY_MS);
        }
        return null;
      }
      if (stopped) return null; // signed out meanwhile: this tab no longer keeps anything
      saveSession(res);
      const next = readSession();
      onToken(next);
      await new Promise((r) => setTimeout(r, HOLD_AFTER_REFRESH_MS));
      return next.token;
    }).finally(() => {
      inflight = null;
    });
    return inflight;
  }

  return {
    renew,
    /** Renews `token` when it is due (80 % of its lifetime). */
    schedule(token) {
      clearTimeout(timer);
      const due = renewalDue(token);
      if (stopped || due === null) return;
      const ms = Math.max(0, due - Date.now());
      if (ms >= 2 ** 31) return; // beyond what setTimeout can wait
      timer = setTimeout(() => renew(token), ms);
    },
    /** Signed out: nothing is renewed, and a renewal under way keeps nothing. */
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    /** Signed in again. */
    resume() {
      stopped = false;
    },
  };
}
