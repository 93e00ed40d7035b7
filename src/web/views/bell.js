// views/bell.js — the notification bell: an unread badge, a panel with the latest
// notifications, and "Mark all read" (a read receipt the server relays to every tab of the
// same user as `notifications_read`, so all badges clear together).

import { h, keyedList, setText, formatDateTime, toast } from '../dom.js';
import { watch } from '../state.js';

/** How many notifications the panel lists. */
const PANEL_ITEMS = 20;

/**
 * Builds the bell inside `slot`. Returns `{ bind(live) → unbind, destroy() }`.
 * The panel is a disclosure: the button toggles it (`aria-expanded`), Esc closes it.
 */
export function createBell(slot) {
  const badge = h('span', { class: 'badge', id: 'bell-badge', hidden: true, 'aria-hidden': 'true' }, '0');
  const button = h(
    'button',
    { type: 'button', class: 'bell', id: 'bell', 'aria-expanded': 'false', 'aria-controls': 'bell-panel', 'aria-label': 'Notifications' },
    h('span', { class: 'bell-icon', 'aria-hidden': 'true' }),
    badge,
  );
  const list = h('ol', { class: 'notif-list', id: 'notif-list' });
  const empty = h('p', { class: 'empty' }, 'No notifications yet.');
  const markAll = h('button', { type: 'button', class: 'btn btn-small', id: 'mark-all-read' }, 'Mark all read');
  const panel = h(
    'div',
    { class: 'bell-panel', id: 'bell-panel', hidden: true, role: 'region', 'aria-label': 'Notifications' },
    h('div', { class: 'bell-panel-head' }, h('h2', {}, 'Notifications'), markAll),
    empty,
    list,
  );
  slot.append(button, panel);

  let live = null;
  const setOpen = (open) => {
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
  };
  button.addEventListener('click', () => setOpen(panel.hidden));
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      setOpen(false);
      button.focus();
    }
  });
  const onDocClick = (e) => {
    if (!panel.hidden && !slot.contains(e.target)) setOpen(false);
  };
  document.addEventListener('click', onDocClick);
  markAll.addEventListener('click', async () => {
    if (!live) return;
    markAll.disabled = true;
    try {
      await live.markAllRead();
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      markAll.disabled = false;
    }
  });

  return {
    bind(target) {
      live = target;
      const stop = watch(target.store, (s) => s.notifications, (n) => {
        setText(badge, n.unread > 99 ? '99+' : String(n.unread));
        badge.hidden = n.unread === 0;
        button.dataset.unread = String(n.unread);
        button.setAttribute('aria-label', n.unread ? `Notifications, ${n.unread} unread` : 'Notifications, none unread');
        const items = n.items.slice(0, PANEL_ITEMS);
        empty.hidden = items.length > 0;
        keyedList(
          list,
          items,
          (e) => e.id,
          (e) => renderItem(e, n),
          (el, e) => el.classList.toggle('unread', isUnread(e, n)),
        );
      });
      return () => {
        stop();
        live = null;
      };
    },
    destroy() {
      document.removeEventListener('click', onDocClick);
    },
  };
}

/** The newest `unread` events are the unread ones (read receipts cover "everything up to"). */
function isUnread(event, n) {
  const index = n.items.findIndex((x) => x.id === event.id);
  return index >= 0 && index < n.unread;
}

function renderItem(event, n) {
  return h(
    'li',
    { class: isUnread(event, n) ? 'notif unread' : 'notif' },
    h('span', { class: 'notif-msg' }, event.payload?.message || event.type),
    h('time', { datetime: event.timestamp }, formatDateTime(event.timestamp)),
  );
}
