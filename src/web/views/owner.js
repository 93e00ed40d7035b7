// views/owner.js — a business owner's day: every business they own, live over one
// `/ws/owner/` channel. A switcher shows each business with its counts (today, upcoming)
// and filters the page to one or all; "Today" lists what is on today; "Upcoming" lists the
// confirmed appointments from now on by start time (with "cancel"); past and cancelled
// ones wait behind a disclosure. A business reassigned to or away from the owner appears or
// disappears as it happens; the bell counts the events of all of them.
//
// The owner only ever gets their own businesses: the server filters `GET /api/businesses/`,
// the owner channel carries only their businesses' events, and this view asks for nothing else.

import { h, keyedList, setText, replace, formatDateTime, toast } from '../dom.js';
import { LiveState, watch } from '../state.js';
import { initialOwnerState, reduceOwner, applyOwnerSnapshot, ownerView, byStart, OWNER_BUSINESS_KEY } from '../owner-state.js';
import { confirmDialog } from './forms.js';
import { renderFeed } from './feed.js';

/** One page of upcoming appointments per business (API.md: `limit` up to 500). */
const PAGE = 100;
/** Appointments whose start passes leave the upcoming list within this long. */
const TICK_MS = 30_000;

const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * Mounts the owner view in `main`, bound to `shell`. Returns the unmount function.
 * @param {HTMLElement} main
 * @param {{ bind: Function }} shell
 * @param {{ api: object, user: object, getToken: () => string, onStop: (reason: string) => void }} ctx
 */
export function mountOwner(main, shell, ctx) {
  const { api } = ctx;
  /** Upcoming page of one business; 404: deleted meanwhile (its event removes it). */
  const upcomingOf = (id, cursor) =>
    api.reservations(id, { limit: PAGE, cursor, upcoming: true }).catch((err) => {
      if (err.status === 404 || err.status === 403) return null;
      throw err;
    });
  const pages = async (ids, cursors = {}) => {
    const answers = await Promise.all(ids.map((id) => upcomingOf(id, cursors[id]).then((page) => [id, page])));
    return Object.fromEntries(answers.filter(([, page]) => page));
  };

  const live = new LiveState({
    api,
    user: ctx.user,
    getToken: ctx.getToken,
    channel: '/ws/owner/',
    initial: initialOwnerState(sessionStorage.getItem(OWNER_BUSINESS_KEY) || ''),
    reduce: (s, ev) => reduceOwner(s, ev),
    snapshot: applyOwnerSnapshot,
    load: async (state) => {
      const [mine, activity, notifications] = await Promise.all([
        api.businesses({ limit: 500 }),
        api.activity(state.activity.filter),
        api.notifications(),
      ]);
      const owned = mine.items || [];
      return { owned, activity, notifications, upcoming: await pages(owned.map((b) => b.id)) };
    },
    onStop: ctx.onStop,
  });

  // A business that became theirs since the snapshot: fetch its appointments (once).
  const fetching = new Set();
  const stops = [
    watch(live.store, (s) => s.owned, (owned, s) => {
      if (!s.loaded) return;
      for (const b of owned) {
        if (b.id in s.upcomingCount || fetching.has(b.id)) continue;
        fetching.add(b.id);
        live.reloadQuietly(async () => ({ upcoming: await pages([b.id]) })).finally(() => fetching.delete(b.id));
      }
    }),
  ];

  // --- the switcher: all businesses, or one -------------------------------------------------
  const switcher = h('nav', { class: 'biz-switcher', id: 'business-switcher', 'aria-label': 'Your businesses' });
  const choose = (id) => {
    sessionStorage.setItem(OWNER_BUSINESS_KEY, id);
    live.store.set({ filterId: id });
  };
  function tab(id) {
    const button = h('button', { type: 'button', class: 'biz-tab', 'data-business': id, onclick: () => choose(button.dataset.business) },
      h('span', { class: 'biz-name' }),
      h('span', { class: 'biz-counts' }));
    return button;
  }
  function updateTab(button, { name, counts, pressed }) {
    setText(button.querySelector('.biz-name'), name);
    setText(button.querySelector('.biz-counts'), counts.loaded === false ? '…' : `${counts.today} today · ${counts.upcoming} upcoming`);
    button.setAttribute('aria-pressed', String(pressed));
  }

  // --- the head: which business (or all), its booking page --------------------------------
  const title = h('h1', { id: 'business-name' });
  const summary = h('p', { class: 'muted', id: 'owner-summary' });
  const link = h('a', { id: 'booking-link' });
  const sub = h('span', { id: 'business-subdomain' });
  const bookingLine = h('p', {}, 'Booking page: ', link, ' · subdomain ', sub);
  const head = h('section', { class: 'card business-head', 'aria-labelledby': 'business-name' }, title, summary, bookingLine);
  const notice = h('p', { class: 'notice', id: 'owner-notice', role: 'status', hidden: true });

  // --- today ---------------------------------------------------------------------------------
  const todayDate = h('span', { class: 'muted', id: 'today-date' });
  const todayRows = h('tbody', { id: 'today-rows' });
  const todayEmpty = h('p', { class: 'empty', id: 'today-empty' }, 'Nothing more on today.');
  const todayTable = h('div', { class: 'table-wrap' },
    h('table', { class: 'table', id: 'today-table' },
      h('caption', { class: 'sr-only' }, "Today's appointments, by start time"),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Time'),
        h('th', { scope: 'col' }, 'Customer'),
        h('th', { scope: 'col' }, 'Service'),
        h('th', { scope: 'col', class: 'col-business' }, 'Business'),
      )),
      todayRows));
  const todayCard = h('section', { class: 'card today-card', id: 'today-card', 'aria-labelledby': 'today-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'today-title' }, 'Today'), todayDate),
    todayEmpty, todayTable);

  // --- upcoming ------------------------------------------------------------------------------
  const rows = h('tbody', { id: 'reservation-rows' });
  const empty = h('p', { class: 'empty' }, 'No upcoming appointments. They appear here the moment a customer books.');
  const count = h('span', { class: 'muted', id: 'reservation-count' });
  const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Show more');
  const table = h('div', { class: 'table-wrap' },
    h('table', { class: 'table', id: 'reservation-table' },
      h('caption', { class: 'sr-only' }, 'Upcoming appointments, soonest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'When'),
        h('th', { scope: 'col' }, 'Customer'),
        h('th', { scope: 'col' }, 'Email'),
        h('th', { scope: 'col' }, 'Service'),
        h('th', { scope: 'col', class: 'col-business' }, 'Business'),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')),
      )),
      rows));
  const upcomingCard = h('section', { class: 'card', 'aria-labelledby': 'res-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'res-title' }, 'Upcoming'), count),
    empty, table, h('div', { class: 'actions' }, more));
  more.addEventListener('click', async () => {
    more.disabled = true;
    const s = live.store.get();
    const ids = Object.keys(s.upcomingCursor).filter((id) => s.upcomingCursor[id] && (!s.filterId || s.filterId === id));
    try {
      await live.reload(async () => ({ upcoming: await pages(ids, s.upcomingCursor), more: true }));
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      more.disabled = false;
    }
  });

  // --- past and cancelled: fetched when opened ----------------------------------------------
  const pastRows = h('tbody', { id: 'past-rows' });
  const pastEmpty = h('p', { class: 'empty', hidden: true }, 'No past or cancelled appointments.');
  const pastTable = h('div', { class: 'table-wrap', hidden: true },
    h('table', { class: 'table', id: 'past-table' },
      h('caption', { class: 'sr-only' }, 'Past and cancelled appointments, latest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'When'),
        h('th', { scope: 'col' }, 'Customer'),
        h('th', { scope: 'col' }, 'Email'),
        h('th', { scope: 'col' }, 'Service'),
        h('th', { scope: 'col', class: 'col-business' }, 'Business'),
        h('th', { scope: 'col' }, 'Status'),
      )),
      pastRows));
  const past = h('details', { class: 'card past', id: 'past' },
    h('summary', {}, h('h2', {}, 'Past and cancelled')), pastEmpty, pastTable);
  let pastTimer = null;
  async function loadPast() {
    const s = live.store.get();
    const ids = s.owned.map((b) => b.id).filter((id) => !s.filterId || s.filterId === id);
    try {
      const lists = await Promise.all(ids.map((id) => api.reservations(id, { limit: PAGE }).then((p) => p.items || [], () => [])));
      const now = Date.now();
      const items = lists.flat().filter((r) => r.status === 'cancelled' || Date.parse(r.starts_at) < now).sort(byStart).reverse();
      if (!past.open) return;
      pastEmpty.hidden = items.length > 0;
      pastTable.hidden = items.length === 0;
      keyedList(pastRows, items, (r) => r.id, (r) => reservationRow(r, false), (tr, r) => updateRow(tr, r, false));
    } catch (err) {
      toast(err.message, 'error');
    }
  }
  past.addEventListener('toggle', () => {
    if (past.open) loadPast();
  });
  const refreshPast = () => {
    if (!past.open || pastTimer) return;
    pastTimer = setTimeout(() => {
      pastTimer = null;
      loadPast();
    }, 300);
  };

  // --- rows ----------------------------------------------------------------------------------
  const businessName = (bid) => live.store.get().owned.find((b) => b.id === bid)?.name ?? '';

  function reservationRow(r, upcoming) {
    const cells = [
      h('td', { class: 'r-when', 'data-label': 'When' }),
      h('td', { class: 'r-name' }),
      h('td', { class: 'r-email', 'data-label': 'Email' }, h('span', { class: 'clip' })),
      h('td', { class: 'r-service', 'data-label': 'Service' }),
      h('td', { class: 'r-business col-business', 'data-label': 'Business' }),
    ];
    if (upcoming) {
      const cancel = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-action': 'cancel', onclick: () => cancelReservation(tr.reservation) }, 'Cancel');
      cells.push(h('td', { class: 'r-actions' }, cancel));
    } else {
      cells.push(h('td', { class: 'r-status', 'data-label': 'Status' }));
    }
    const tr = h('tr', {}, ...cells);
    updateRow(tr, r, upcoming);
    return tr;
  }

  function updateRow(tr, r, upcoming) {
    tr.reservation = r;
    setText(tr.querySelector('.r-when'), formatDateTime(r.starts_at));
    setText(tr.querySelector('.r-name'), r.customer_name);
    const email = tr.querySelector('.r-email');
    setText(email.firstChild, r.customer_email);
    email.title = r.customer_email; // the whole address, where it is shown cut with "…"
    setText(tr.querySelector('.r-service'), r.service);
    setText(tr.querySelector('.r-business'), businessName(r.business_id));
    if (upcoming) {
      tr.querySelector('button').setAttribute('aria-label', `Cancel the reservation of ${r.customer_name}`);
    } else {
      const status = tr.querySelector('.r-status');
      setText(status, r.status === 'cancelled' ? 'Cancelled' : 'Past');
      status.dataset.status = r.status;
      tr.classList.toggle('cancelled', r.status === 'cancelled');
    }
  }

  function todayRow(r) {
    const tr = h('tr', {},
      h('td', { class: 't-time' }, h('time', { datetime: r.starts_at })),
      h('td', { class: 'r-name' }),
      h('td', { class: 'r-service', 'data-label': 'Service' }),
      h('td', { class: 'r-business col-business', 'data-label': 'Business' }));
    updateTodayRow(tr, r);
    return tr;
  }

  function updateTodayRow(tr, r) {
    setText(tr.querySelector('time'), clock.format(new Date(r.starts_at)));
    setText(tr.querySelector('.r-name'), r.customer_name);
    setText(tr.querySelector('.r-service'), r.service);
    setText(tr.querySelector('.r-business'), businessName(r.business_id));
  }

  async function cancelReservation(r) {
    const ok = await confirmDialog({
      title: 'Cancel this reservation?',
      message: `${r.customer_name}, ${formatDateTime(r.starts_at)}, ${r.service}. The customer is notified by email.`,
      confirmLabel: 'Cancel reservation',
    });
    if (!ok) return;
    try {
      const updated = await api.cancelReservation(r.business_id, r.id);
      live.store.set((s) => reduceOwner(s, { type: 'reservation_cancelled', payload: { business_id: r.business_id, reservation: updated } }));
      toast(`Cancelled the reservation of ${r.customer_name}.`);
      refreshPast();
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  // --- page ----------------------------------------------------------------------------------
  const loading = h('p', { class: 'loading' }, 'Loading your businesses…');
  const none = h('section', { class: 'card', id: 'no-business', hidden: true },
    h('h1', {}, 'No business yet'),
    h('p', {}, 'No business lists your email as its owner. Ask the platform admin to create one for you; it appears here the moment they do.'));
  const problem = h('p', { class: 'notice', role: 'alert', hidden: true });
  const content = h('div', { class: 'owner-day', hidden: true },
    switcher, head,
    h('div', { class: 'columns' },
      h('div', { class: 'col-main' }, todayCard, upcomingCard, past),
      h('div', { class: 'col-side' }, renderFeedInto())));
  function renderFeedInto() {
    const feed = renderFeed(live);
    stops.push(feed.stop);
    return feed.section;
  }
  replace(main, problem, notice, loading, none, content);

  function render(s) {
    loading.hidden = s.loaded || Boolean(s.loadError);
    none.hidden = !s.loaded || s.owned.length > 0;
    content.hidden = !s.loaded || s.owned.length === 0;
    if (!s.loaded) return;
    const now = Date.now();
    const view = ownerView(s, now);
    const several = s.owned.length > 1;
    content.classList.toggle('one-business', !several || Boolean(s.filterId));

    // Switcher: "All" first, then each business by name.
    switcher.hidden = !several;
    const all = Object.values(view.counts).reduce((a, c) => ({ today: a.today + c.today, upcoming: a.upcoming + c.upcoming }), { today: 0, upcoming: 0 });
    const tabs = [{ id: '', name: 'All businesses', counts: all }, ...s.owned.map((b) => ({ id: b.id, name: b.name, counts: view.counts[b.id] }))];
    keyedList(switcher, tabs, (x) => x.id || 'all', (x) => tab(x.id), () => {});
    for (const [i, x] of tabs.entries()) updateTab(switcher.children[i], { ...x, pressed: x.id === s.filterId });

    // Head.
    const b = s.owned.find((x) => x.id === s.filterId) ?? (several ? null : s.owned[0]);
    const counts = b ? view.counts[b.id] : all;
    setText(title, b ? b.name : 'All your businesses');
    document.title = `${b ? b.name : 'Your businesses'} · Dashboard`;
    setText(summary, `${b ? '' : `${plural(s.owned.length, 'business', 'businesses')} · `}${plural(counts.today, 'appointment')} today · ${counts.upcoming} upcoming`);
    bookingLine.hidden = !b;
    if (b) {
      link.href = `/b/${b.subdomain}/`;
      setText(link, `${location.origin}/b/${b.subdomain}/`);
      setText(sub, b.subdomain);
    }

    // Today.
    setText(todayDate, dayFormat.format(new Date(now)));
    todayEmpty.hidden = view.today.length > 0;
    todayTable.hidden = view.today.length === 0;
    keyedList(todayRows, view.today, (r) => r.id, todayRow, updateTodayRow);

    // Upcoming.
    empty.hidden = view.upcoming.length > 0;
    table.hidden = view.upcoming.length === 0;
    keyedList(rows, view.upcoming, (r) => r.id, (r) => reservationRow(r, true), (tr, r) => updateRow(tr, r, true));
    setText(count, `${counts.upcoming} upcoming`);
    more.hidden = !Object.entries(s.upcomingCursor).some(([id, c]) => c && (!s.filterId || s.filterId === id));
  }

  const watched = (s) => [s.loaded, s.owned, s.upcoming, s.upcomingCount, s.upcomingCursor, s.filterId];
  let last = [];
  const unsubscribe = live.store.subscribe((s, prev) => {
    const current = watched(s);
    if (current.some((v, i) => v !== last[i])) {
      last = current;
      render(s);
    }
    if (s.filterId !== prev.filterId) refreshPast();
    if (s.upcoming !== prev.upcoming) refreshPast();
  });
  stops.push(unsubscribe);
  render(live.store.get());
  const tick = setInterval(() => render(live.store.get()), TICK_MS);

  stops.push(watch(live.store, (s) => s.loadError, (msg) => {
    problem.hidden = !msg;
    setText(problem, msg ? `Could not load: ${msg}` : '');
    if (msg) loading.hidden = true;
  }));
  stops.push(watch(live.store, (s) => s.ownerNotice, (n) => {
    if (!n) return;
    const text = {
      added: `“${n.name}” is now yours: it is on this page.`,
      reassigned: `“${n.name}” was reassigned to another owner.`,
      deleted: `“${n.name}” has been deleted.`,
    }[n.why];
    notice.hidden = false;
    setText(notice, text);
  }));

  const unbind = shell.bind(live);
  live.start();
  return () => {
    clearInterval(tick);
    clearTimeout(pastTimer);
    unbind();
    live.stop();
    stops.forEach((stop) => stop());
  };
}
