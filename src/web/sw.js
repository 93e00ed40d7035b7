// sw.js — the dashboard's service worker (served at /sw.js so its scope is the whole origin).
//
// Three jobs, and nothing else (it caches no API answer and no dashboard state):
// - push: the server sends each event frame (API.md, Web Push) to every subscription of the
//   user; this shows it as a system notification, unless a dashboard window is in front (the
//   page shows the event live there already). Bursts are coalesced per business: one
//   notification per business (its `tag`), saying how many updates it stands for.
// - notificationclick: focuses a dashboard window (or opens one) at the event's business.
// - offline: a page navigation that cannot reach the server gets the offline page instead of
//   the browser's error. Only the offline page and what it shows are cached.

const CACHE = 'offline-v1';
const OFFLINE_URL = '/assets/offline.html';
const OFFLINE_FILES = [OFFLINE_URL, '/assets/app.css', '/assets/pwa.css', '/assets/icon.svg'];
const ICON = '/assets/icons/icon-192.png';

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(OFFLINE_FILES.map((url) => new Request(url, { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || request.method !== 'GET') return;
  if (request.mode === 'navigate') {
    event.respondWith(fetch(request).catch(() => offline()));
  } else if (OFFLINE_FILES.includes(url.pathname)) {
    // Network first, so an upgraded binary's files are used at once; the copy is for offline.
    event.respondWith(fetch(request).then((res) => {
      if (res.ok) {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(url.pathname, copy)));
      }
      return res;
    }).catch(async () => (await caches.match(url.pathname)) || Response.error()));
  }
  // Everything else (the API, WebSockets, other assets) goes to the network untouched.
});

async function offline() {
  const page = await caches.match(OFFLINE_URL);
  return page || new Response('The server cannot be reached.', {
    status: 503,
    headers: { 'Content-Type': 'text/plain; charset=utf-8' },
  });
}

// --- push ------------------------------------------------------------------------------

self.addEventListener('push', (event) => {
  event.waitUntil(showPush(event.data));
});

/**
 * The event frames in a push: one frame (API.md), the newest one with `"coalesced": N` when
 * the server merged a burst of N (README "Web Push"), or a list (an array, or `{events}`). An unreadable payload gives no frame; a push still
 * shows a notification then (the browser requires one for each push it delivers).
 */
function framesOf(data) {
  let body = null;
  try {
    body = data ? data.json() : null;
  } catch {
    body = null;
  }
  const list = Array.isArray(body) ? body : Array.isArray(body?.events) ? body.events
    : Array.isArray(body?.payload?.events) ? body.payload.events : body ? [body] : [];
  return list.filter((f) => f && typeof f === 'object');
}

/** The business an event is about, from whichever entity it carries. */
function businessOf(frame) {
  const p = frame.payload || {};
  return p.business_id || p.reservation?.business_id || p.business?.id || null;
}

/** A second line for a notification: who booked what and when, or which business. */
function detailOf(frame) {
  const p = frame.payload || {};
  const r = p.reservation;
  if (r) {
    const when = new Date(r.starts_at);
    const at = Number.isNaN(when.getTime()) ? '' : when.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    return [r.customer_name, r.service, at].filter(Boolean).join(' · ');
  }
  return p.business?.name || '';
}

/** Whether a dashboard window is in front of the user (then the page itself shows events). */
async function dashboardInFront() {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  return windows.some((w) => w.focused && w.visibilityState === 'visible' && new URL(w.url).pathname === '/');
}

async function showPush(data) {
  if (await dashboardInFront()) return;
  const frames = framesOf(data);
  const latest = frames[frames.length - 1] || null;
  const business = latest ? businessOf(latest) : null;
  const tag = business ? `business-${business}` : 'dashboard';
  // Updates not yet looked at are counted into the notification that replaces them.
  const earlier = await self.registration.getNotifications({ tag });
  // The server merges a burst into one push carrying the newest frame and `"coalesced": N`.
  const carried = frames.reduce((n, f) => n + (Number.isInteger(f.coalesced) && f.coalesced > 1 ? f.coalesced : 1), 0);
  const count = Math.max(carried, 1) + earlier.reduce((n, x) => n + (x.data?.count || 1), 0);
  const title = latest?.payload?.message || 'New activity on your dashboard';
  const detail = latest ? detailOf(latest) : 'Open the dashboard to see what changed.';
  const more = count > 1 ? `+${count - 1} more update${count > 2 ? 's' : ''}` : '';
  await self.registration.showNotification(title, {
    body: [detail, more].filter(Boolean).join('\n'),
    tag,
    renotify: true,
    icon: ICON,
    badge: ICON,
    timestamp: latest?.timestamp ? Date.parse(latest.timestamp) || Date.now() : Date.now(),
    data: {
      url: business ? `/?business=${encodeURIComponent(business)}` : '/',
      count,
      eventId: Number.isInteger(latest?.id) ? latest.id : null,
    },
  });
}

// --- notification click --------------------------------------------------------------------

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openTarget(event.notification.data?.url || '/'));
});

/**
 * Shows `path` (the dashboard at a business) in a dashboard window: the one already open
 * (navigated there, then focused), or a new one.
 */
async function openTarget(path) {
  const url = new URL(path, self.location.origin).href;
  const windows = await self.clients.matchAll({ type: 'window' });
  const dashboard = windows.find((w) => new URL(w.url).pathname === '/');
  if (dashboard) {
    let client = dashboard;
    if (dashboard.url !== url) client = (await dashboard.navigate(url).catch(() => null)) || dashboard;
    return client.focus().catch(() => client);
  }
  return self.clients.openWindow(url);
}
