// views/push.js — the "Notifications" toggle in the top bar: Web Push on this device, on or off.
//
// On: ask the browser's permission (only now, when the person pressed the button), fetch the
// server's VAPID key (`GET /api/push/key`), subscribe with the browser's push service
// (`pushManager.subscribe`), and hand the subscription to the server
// (`POST /api/push/subscriptions/` → `{id}`). Off: unsubscribe in the browser and
// `DELETE /api/push/subscriptions/{id}/`. The server id is kept in localStorage with the
// endpoint and the user it belongs to, so the toggle shows the truth after a reload and
// another person signing in on this browser starts with Off. Every failure is said plainly.

import { h, setText } from '../dom.js';

const STORE_KEY = 'app.push';
/** How long to wait for the service worker (registered at load by pwa.js) before giving up. */
const READY_TIMEOUT_MS = 10_000;

/** The stored `{id, endpoint, user}` of this browser's subscription, or null. */
function stored() {
  try {
    return JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
  } catch {
    return null;
  }
}

/** The VAPID key (base64url, as `GET /api/push/key` sends it) as the bytes `subscribe` takes. */
export function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '='));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** Whether `sub` was made with `key` (a key rotated on the server needs a new subscription). */
function sameKey(sub, key) {
  const current = sub.options?.applicationServerKey;
  if (!current) return true;
  const a = new Uint8Array(current);
  return a.length === key.length && a.every((b, i) => b === key[i]);
}

/** Why subscribing failed, for a person. */
function subscribeError(err) {
  if (err?.name === 'NotAllowedError') return 'Notifications are blocked for this site. Allow them in the browser’s site settings, then try again.';
  if (err?.name === 'AbortError' || /push service/i.test(err?.message || '')) {
    return `The browser’s push service could not be reached or refused (${err.message}), so notifications cannot be turned on now. Check the connection and try again.`;
  }
  return `Notifications could not be turned on: ${err?.message || err}`;
}

/** What the browser supports; null when it can do Web Push, else why not. */
function unsupported() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
    return window.isSecureContext
      ? 'This browser cannot show notifications. On an iPhone, add the dashboard to the Home Screen first and open it from there.'
      : 'Notifications need a secure (https://) address.';
  }
  return null;
}

/**
 * Turns this browser's notifications off for `user` (signing out): the next person to sign
 * in here must not get the previous one's bookings on this screen. Never throws; gives up
 * after a few seconds (an unreachable server removes the subscription at its next push).
 */
export async function disablePush(api, user) {
  const mine = stored();
  if (!mine || !('serviceWorker' in navigator)) return;
  localStorage.removeItem(STORE_KEY);
  const work = (async () => {
    const reg = await navigator.serviceWorker.getRegistration('/');
    const sub = await reg?.pushManager.getSubscription();
    await sub?.unsubscribe();
    if (mine.user === user?.id) await api.request('DELETE', `/api/push/subscriptions/${encodeURIComponent(mine.id)}/`);
  })().catch(() => {});
  await Promise.race([work, new Promise((r) => setTimeout(r, READY_TIMEOUT_MS / 2))]);
}

/**
 * Mounts the toggle at the start of `slot`. Returns `{ destroy() }`.
 * @param {HTMLElement} slot
 * @param {{ api: { request: Function }, user: { id: string } }} ctx
 */
export function mountPushToggle(slot, { api, user }) {
  const button = h('button', { type: 'button', class: 'btn btn-quiet btn-small push-toggle', id: 'push-toggle', 'aria-pressed': 'false' }, 'Notifications: off');
  const message = h('p', { class: 'push-message', id: 'push-message', role: 'status' });
  const root = h('div', { class: 'push' }, button, message);
  slot.prepend(root);
  let busy = false;
  let on = false;

  function show(state, text = '', kind = 'error') {
    on = state === 'on';
    button.setAttribute('aria-pressed', String(on));
    button.dataset.state = state;
    setText(button, on ? 'Notifications: on' : 'Notifications: off');
    button.title = on ? 'This device gets a notification for each booking and change. Press to turn off.'
      : 'Get a notification on this device for each booking and change, even with the dashboard closed.';
    message.dataset.kind = kind;
    setText(message, text);
  }

  /** The service worker's registration; it is what subscribes and shows notifications. */
  async function registration() {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the service worker is not running; reload the page')), READY_TIMEOUT_MS);
    });
    try {
      return await Promise.race([navigator.serviceWorker.ready, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the current state without asking anything of the person. */
  async function refresh() {
    const why = unsupported();
    if (why) {
      button.disabled = true;
      show('unsupported', why, 'info');
      return;
    }
    const mine = stored();
    const sub = await (await registration()).pushManager.getSubscription().catch(() => null);
    if (Notification.permission === 'denied') show('blocked', 'Notifications are blocked for this site in the browser’s settings.');
    else if (sub && mine?.user === user.id && mine.endpoint === sub.endpoint) show('on');
    else show('off');
  }

  async function turnOn() {
    // The permission prompt comes from this press, never on its own.
    const permission = await Notification.requestPermission();
    if (permission !== 'granted') {
      show(permission === 'denied' ? 'blocked' : 'off', permission === 'denied'
        ? 'Notifications are blocked for this site. Allow them in the browser’s site settings, then try again.'
        : 'Notifications stay off: the browser’s permission was not given.');
      return;
    }
    let key;
    try {
      key = keyBytes((await api.request('GET', '/api/push/key')).public_key);
    } catch (err) {
      show('off', `Notifications could not be turned on: ${err.message}`);
      return;
    }
    const reg = await registration();
    let sub = await reg.pushManager.getSubscription();
    if (sub && (!sameKey(sub, key) || stored()?.user !== user.id)) {
      // Another key or another person's subscription: never reuse it.
      await sub.unsubscribe().catch(() => {});
      sub = null;
    }
    try {
      sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    } catch (err) {
      show('off', subscribeError(err));
      return;
    }
    try {
      const { id } = await api.request('POST', '/api/push/subscriptions/', sub.toJSON());
      localStorage.setItem(STORE_KEY, JSON.stringify({ id, endpoint: sub.endpoint, user: user.id }));
    } catch (err) {
      await sub.unsubscribe().catch(() => {});
      show('off', `The server did not take the subscription: ${err.message}`);
      return;
    }
    show('on', 'Notifications are on for this device.', 'info');
  }

  async function turnOff() {
    const mine = stored();
    const sub = await (await registration()).pushManager.getSubscription().catch(() => null);
    await sub?.unsubscribe().catch(() => {});
    localStorage.removeItem(STORE_KEY);
    if (mine?.id && mine.user === user.id) {
      try {
        await api.request('DELETE', `/api/push/subscriptions/${encodeURIComponent(mine.id)}/`);
      } catch (err) {
        // Already gone is fine; otherwise the push service's 410 removes it on the next push.
        if (err.status !== 404) {
          show('off', `Turned off on this device; the server could not be told (${err.message}) and will forget it on its next push.`, 'info');
          return;
        }
      }
    }
    show('off', 'Notifications are off for this device.', 'info');
  }

  button.addEventListener('click', async () => {
    if (busy) return;
    busy = true;
    button.disabled = true;
    try {
      await (on ? turnOff() : turnOn());
    } catch (err) {
      show(on ? 'on' : 'off', `Something went wrong: ${err?.message || err}`);
    } finally {
      busy = false;
      button.disabled = false;
    }
  });

  refresh().catch(() => show('off'));
  return { destroy: () => root.remove() };
}
