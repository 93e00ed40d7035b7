// pwa.js — the page's side of the installable app: registers the service worker (sw.js),
// and opens the business a notification was about.
//
// A notification click opens `/?business=<id>` (sw.js). The owner view remembers the business
// on screen under `app.ownerBusiness` in sessionStorage and starts there, so the link only has
// to set it; the query is then dropped from the address bar so a reload does not repeat it.

import { OWNER_BUSINESS_KEY } from './owner-state.js';

/** Applies a `?business=<id>` link; call before the owner view mounts. */
export function applyDeepLink(loc = window.location) {
  const url = new URL(loc.href);
  const id = url.searchParams.get('business');
  if (!id) return null;
  sessionStorage.setItem(OWNER_BUSINESS_KEY, id);
  url.searchParams.delete('business');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  return id;
}

/**
 * Registers `/sw.js` for the whole origin; resolves to the registration, or null where the
 * browser has no service workers (an insecure origin other than localhost, old browsers).
 * A failure never stops the dashboard: it works without the worker, only not offline or
 * with notifications.
 */
export async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return null;
  try {
    return await navigator.serviceWorker.register('/sw.js', { scope: '/', updateViaCache: 'none' });
  } catch (err) {
    console.warn('service worker not registered:', err);
    return null;
  }
}
