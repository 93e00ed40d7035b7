// views/owner.js — a business owner's view: their business, its reservations arriving live
// (with "cancel"), and its activity. One `/ws/business/{id}/` channel for the business on
// screen; an owner with several businesses picks one, and the channel follows.
//
// The owner only ever gets their own businesses: the server filters `GET /api/businesses/`
// and refuses other channels (4403); this view never asks for anything else.

import { h, keyedList, setText, replace, formatDateTime, toast } from '../dom.js';
import { LiveState, watch, replaceById } from '../state.js';
import { confirmDialog } from './forms.js';
import { renderFeed } from './feed.js';

const SELECTED_KEY = 'app.ownerBusiness';

/**
 * Mounts the owner view in `main`, bound to `shell`. Returns the unmount function.
 * @param {HTMLElement} main
 * @param {{ bind: Function }} shell
 * @param {{ api: object, user: object, getToken: () => string, onStop: (reason: string) => void }} ctx
 */
export function mountOwner(main, shell, ctx) {
  const { api } = ctx;
  let current = null; // { live, unmount }
  let destroyed = false;

  async function start() {
    replace(main, h('p', { class: 'loading' }, 'Loading your business…'));
    let owned;
    try {
      owned = (await api.businesses({ limit: 100 })).items || [];
    } catch (err) {
      if (err.status === 401 || destroyed) return;
      replace(main, h('p', { class: 'notice', role: 'alert' }, `Could not load your businesses: ${err.message}`),
        h('button', { type: 'button', class: 'btn', onclick: start }, 'Try again'));
      return;
    }
    if (destroyed) return;
    if (!owned.length) {
      replace(main, h('section', { class: 'card' },
        h('h1', {}, 'No business yet'),
        h('p', {}, 'No business lists your email as its owner. Ask the platform admin to create one for you.'),
        h('button', { type: 'button', class: 'btn', onclick: start }, 'Check again')));
      return;
    }
    const saved = sessionStorage.getItem(SELECTED_KEY);
    show(owned.some((b) => b.id === saved) ? saved : owned[0].id, owned);
  }

  /** Shows business `id` (one of `owned`) with its own live channel. */
  function show(id, owned) {
    current?.unmount();
    sessionStorage.setItem(SELECTED_KEY, id);
    const live = new LiveState({
      api,
      user: ctx.user,
      getToken: ctx.getToken,
      channel: `/ws/business/${encodeURIComponent(id)}/`,
      initial: { selectedId: id, owned },
      load: async (state) => {
        const [mine, reservations, activity, notifications] = await Promise.all([
          api.businesses({ limit: 100 }),
          // 404: the business was deleted meanwhile; the page says so (it is not in `owned`).
          api.reservations(id, { limit: 100 }).catch((err) => {
            if (err.status === 404) return { items: [], count: 0, next_cursor: null };
            throw err;
          }),
          api.activity(state.activity.filter),
          api.notifications(),
        ]);
        return { owned: mine.items || [], reservations, activity, notifications };
      },
      onStop: ctx.onStop,
    });
    current = { live, unmount: renderBusiness(live, id) };
    live.start();
  }

  /** Renders the page for one business; returns its unmount function. */
  function renderBusiness(live, id) {
    const stops = [];

    // --- header: the business, the booking link, the picker -----------------------------------
    const title = h('h1', { id: 'business-name' });
    const sub = h('span', { id: 'business-subdomain' });
    const link = h('a', { id: 'booking-link' });
    const ownerLine = h('p', { class: 'muted' });
    const gone = h('p', { class: 'notice', role: 'alert', hidden: true }, 'This business has been deleted.');
    const picker = h('select', { id: 'business-picker' });
    const pickerWrap = h('div', { class: 'inline-field', hidden: true }, h('label', { for: 'business-picker' }, 'Business'), picker);
    picker.addEventListener('change', () => show(picker.value, live.store.get().owned));
    const head = h('section', { class: 'card business-head', 'aria-labelledby': 'business-name' },
      h('div', { class: 'card-head' }, title, pickerWrap),
      gone,
      h('p', {}, 'Booking page: ', link, ' · subdomain ', sub),
      ownerLine,
    );
    stops.push(watch(live.store, (s) => s.owned, (owned) => {
      const b = owned.find((x) => x.id === id);
      gone.hidden = Boolean(b);
      if (b) {
        setText(title, b.name);
        setText(sub, b.subdomain);
        link.href = `/b/${b.subdomain}/`;
        setText(link, `${location.origin}/b/${b.subdomain}/`);
        setText(ownerLine, `Owner: ${b.owner_email}`);
        document.title = `${b.name} · Dashboard`;
      }
      pickerWrap.hidden = owned.length < 2;
      picker.replaceChildren(...owned.map((x) => h('option', { value: x.id }, x.name)));
      picker.value = id;
    }));

    // --- reservations ------------------------------------------------------------------------
    const rows = h('tbody', { id: 'reservation-rows' });
    const empty = h('p', { class: 'empty' }, 'No reservations yet. They appear here the moment a customer books.');
    const count = h('span', { class: 'muted', id: 'reservation-count' });
    const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Show more');
    const table = h('div', { class: 'table-wrap' },
      h('table', { class: 'table', id: 'reservation-table' },
        h('caption', { class: 'sr-only' }, 'Reservations, newest first'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Customer'),
          h('th', { scope: 'col' }, 'Email'),
          h('th', { scope: 'col' }, 'When'),
          h('th', { scope: 'col' }, 'Service'),
          h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')),
        )),
        rows,
      ),
    );
    const section = h('section', { class: 'card', 'aria-labelledby': 'res-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'res-title' }, 'Reservations'), count),
      empty, table, h('div', { class: 'actions' }, more),
    );
    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        const page = await api.reservations(id, { limit: 100, cursor: live.store.get().reservationsCursor });
        live.store.set((s) => {
          const known = new Set(s.reservations.map((r) => r.id));
          return { ...s, reservations: [...s.reservations, ...page.items.filter((r) => !known.has(r.id))], reservationsCursor: page.next_cursor };
        });
      } catch (err) {
        toast(err.message, 'error');
      } finally {
        more.disabled = false;
      }
    });
    const renderReservations = (s) => {
      empty.hidden = s.reservations.length > 0;
      table.hidden = s.reservations.length === 0;
      keyedList(rows, s.reservations, (r) => r.id, reservationRow, updateReservationRow);
      setText(count, `${s.reservationsCount} in total`);
      more.hidden = !s.reservationsCursor;
    };
    stops.push(watch(live.store, (s) => s.reservations, (_, s) => renderReservations(s)));

    function reservationRow(r) {
      const cancel = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-action': 'cancel', onclick: () => cancelReservation(tr.reservation) }, 'Cancel');
      const tr = h('tr', {},
        h('td', { class: 'r-name' }),
        h('td', { class: 'r-email', 'data-label': 'Email' }, h('span', { class: 'clip' })),
        h('td', { class: 'r-when', 'data-label': 'When' }),
        h('td', { class: 'r-service', 'data-label': 'Service' }),
        h('td', { class: 'r-status', 'data-label': 'Status' }),
        h('td', { class: 'r-actions' }, cancel),
      );
      updateReservationRow(tr, r);
      return tr;
    }

    function updateReservationRow(tr, r) {
      tr.reservation = r;
      setText(tr.querySelector('.r-name'), r.customer_name);
      const email = tr.querySelector('.r-email');
      setText(email.firstChild, r.customer_email);
      email.title = r.customer_email; // the whole address, where it is shown cut with "…"
      setText(tr.querySelector('.r-when'), formatDateTime(r.starts_at));
      setText(tr.querySelector('.r-service'), r.service);
      const status = tr.querySelector('.r-status');
      setText(status, r.status === 'cancelled' ? 'Cancelled' : 'Confirmed');
      status.dataset.status = r.status;
      tr.classList.toggle('cancelled', r.status === 'cancelled');
      const button = tr.querySelector('button');
      button.hidden = r.status === 'cancelled';
      button.setAttribute('aria-label', `Cancel the reservation of ${r.customer_name}`);
    }

    async function cancelReservation(r) {
      const ok = await confirmDialog({
        title: 'Cancel this reservation?',
        message: `${r.customer_name}, ${formatDateTime(r.starts_at)}, ${r.service}. The customer is notified by email.`,
        confirmLabel: 'Cancel reservation',
      });
      if (!ok) return;
      try {
        const updated = await api.cancelReservation(id, r.id);
        live.store.set((s) => ({ ...s, reservations: replaceById(s.reservations, updated) }));
        toast(`Cancelled the reservation of ${r.customer_name}.`);
      } catch (err) {
        toast(err.message, 'error');
      }
    }

    // --- page ----------------------------------------------------------------------------------
    const feed = renderFeed(live);
    stops.push(feed.stop);
    const problem = h('p', { class: 'notice', role: 'alert', hidden: true });
    stops.push(watch(live.store, (s) => s.loadError, (msg) => {
      problem.hidden = !msg;
      setText(problem, msg ? `Could not load: ${msg}` : '');
    }));
    replace(main, problem, head, h('div', { class: 'columns' }, h('div', { class: 'col-main' }, section), h('div', { class: 'col-side' }, feed.section)));
    const unbind = shell.bind(live);
    return () => {
      unbind();
      live.stop();
      stops.forEach((stop) => stop());
    };
  }

  start();
  return () => {
    destroyed = true;
    current?.unmount();
  };
}
