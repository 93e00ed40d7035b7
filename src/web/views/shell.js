// views/shell.js — the top bar of a signed-in page: title, connection status, the
// notification bell, who is signed in, and "Sign out".

import { h, replace, setText } from '../dom.js';
import { watch } from '../state.js';
import { createBell } from './bell.js';

const STATUS_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting',
  offline: 'Offline',
};

/** Explains a status to a person (shown as the status tooltip and to screen readers). */
function statusDetail(status, detail) {
  if (status === 'reconnecting' && detail.retryAt) {
    const s = Math.max(0, Math.round((detail.retryAt - Date.now()) / 1000));
    return `Connection lost; retrying in ${s} s (attempt ${detail.attempt}).`;
  }
  if (status === 'offline') {
    if (detail.reason === 'network') return 'Your device is offline; we reconnect when it is back.';
    if (detail.reason === 'forbidden' || detail.reason === 'not_found') return 'No access to this channel.';
    if (detail.reason === 'protocol') return 'The server refused our messages; reload the page.';
    return 'Not connected.';
  }
  if (status === 'live') return 'Receiving live updates.';
  return 'Connecting to live updates…';
}

/**
 * Renders the top bar into `root` and returns `{ bind(live), destroy() }`:
 * `bind` points the status and the bell at a LiveState (an owner switching business
 * rebinds), and returns the function that unbinds.
 */
export function renderShell(root, { user, title, onSignOut }) {
  const status = h('span', { id: 'conn-status', class: 'status', role: 'status', 'data-status': 'connecting' }, 'Connecting…');
  const bellSlot = h('div', { class: 'bell-slot' });
  const signOut = h('button', { type: 'button', class: 'btn btn-quiet', id: 'sign-out', title: `Signed in as ${user.email}`, onclick: onSignOut }, 'Sign out');
  replace(
    root,
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', {}, title)),
    h('div', { class: 'topbar-right' },
      status,
      bellSlot,
      h('span', { class: 'who', title: user.role === 'super_admin' ? 'Super admin' : 'Business owner' }, user.email),
      signOut,
    ),
  );
  root.hidden = false;
  const bell = createBell(bellSlot);
  let current = null; // the bound LiveState

  return {
    /** Switches the open channel to a new token of the same user (API.md: `auth` frame). */
    useToken(token) {
      current?.connection.send({ type: 'auth', token });
    },
    bind(live) {
      current = live;
      const stopStatus = watch(live.store, (s) => s.connection, ({ status: st, detail }) => {
        status.dataset.status = st;
        setText(status, STATUS_TEXT[st] || st);
        status.title = statusDetail(st, detail);
      });
      const unbindBell = bell.bind(live);
      return () => {
        stopStatus();
        unbindBell();
        if (current === live) current = null;
      };
    },
    destroy() {
      bell.destroy();
      root.replaceChildren();
      root.hidden = true;
    },
  };
}
