// views/admin.js — the super admin's dashboard: counts, two live charts, the businesses
// (create, edit, delete, with the server's validation errors at each field), owner accounts,
// and the activity feed. Everything live over the `/ws/dashboard/` channel.

import { h, keyedList, setText, replace, formatDateTime, toast } from '../dom.js';
import { LiveState, watch } from '../state.js';
import { drawBars, drawHBars, perMinute } from '../chart.js';
import { field, formError, onSubmit, modal, confirmDialog } from './forms.js';
import { renderFeed } from './feed.js';

/** How many businesses the reservations chart shows (the newest). */
const CHART_BUSINESSES = 10;

/** Loads the admin's snapshot over REST (see `applySnapshot`). */
async function loadAdmin(api, state) {
  const [dashboard, activity, notifications] = await Promise.all([
    api.dashboard(),
    api.activity(state.activity.filter),
    api.notifications(),
  ]);
  const ids = (dashboard.recent_businesses || []).slice(0, CHART_BUSINESSES).map((b) => b.id);
  const counts = await Promise.all(
    ids.map((id) => api.reservations(id, { limit: 1 }).then((r) => [id, r.count], () => [id, 0])),
  );
  return { dashboard, activity, notifications, perBusiness: Object.fromEntries(counts) };
}

/**
 * Mounts the admin view in `main`, bound to `shell`. Returns the unmount function.
 * @param {HTMLElement} main
 * @param {{ bind: Function }} shell
 * @param {{ api: object, user: object, getToken: () => string, onStop: (reason: string) => void }} ctx
 */
export function mountAdmin(main, shell, { api, user, getToken, onStop }) {
  const live = new LiveState({
    api,
    user,
    getToken,
    channel: '/ws/dashboard/',
    load: (state) => loadAdmin(api, state),
    onStop,
  });
  const stops = [];

  // --- counts -------------------------------------------------------------------------
  const stat = (id, label) =>
    h('div', { class: 'stat' },
      h('span', { class: 'stat-label', id: `${id}-label` }, label),
      h('span', { class: 'stat-value', id, 'aria-labelledby': `${id}-label ${id}` }, '–'));
  const statBusinesses = stat('stat-businesses', 'Businesses');
  const statReservations = stat('stat-reservations', 'Reservations');
  const statConnections = stat('stat-connections', 'Open connections');
  const stats = h('section', { class: 'stats', 'aria-label': 'Totals' }, statBusinesses, statReservations, statConnections);
  stops.push(watch(live.store, (s) => s.stats, (st) => {
    if (!st) return;
    setText(statBusinesses.lastChild, st.business_count);
    setText(statReservations.lastChild, st.reservation_count);
    setText(statConnections.lastChild, st.connections ?? '–');
  }));

  // --- charts -------------------------------------------------------------------------
  const eventsCanvas = h('canvas', { id: 'chart-events', class: 'chart', role: 'img', 'aria-label': 'Events per minute' });
  const resCanvas = h('canvas', { id: 'chart-reservations', class: 'chart', role: 'img', 'aria-label': 'Reservations per business' });
  const charts = h('section', { class: 'charts' },
    h('figure', { class: 'card chart-card' }, h('figcaption', {}, 'Events per minute, last hour'), eventsCanvas),
    h('figure', { class: 'card chart-card' }, h('figcaption', {}, 'Reservations per business (newest 10)'), resCanvas),
  );
  const drawEvents = () => drawBars(eventsCanvas, perMinute(live.store.get().eventTimes), {
    label: 'Events per minute over the last hour', xStart: '−60 min', xEnd: 'now',
  });
  const drawReservations = () => {
    const s = live.store.get();
    const rows = s.businesses
      .filter((b) => b.id in s.perBusiness)
      .slice(0, CHART_BUSINESSES)
      .map((b) => ({ label: b.name, value: s.perBusiness[b.id] }));
    drawHBars(resCanvas, rows, { label: 'Reservations per business', empty: 'No businesses yet' });
  };
  stops.push(watch(live.store, (s) => s.eventTimes, drawEvents));
  stops.push(watch(live.store, (s) => s.perBusiness, drawReservations));
  stops.push(watch(live.store, (s) => s.businesses, drawReservations));
  const minuteTimer = setInterval(drawEvents, 15_000); // bars slide left as minutes pass
  const resize = new ResizeObserver(() => {
    drawEvents();
    drawReservations();
  });
  resize.observe(eventsCanvas);
  resize.observe(resCanvas);

  // --- businesses -----------------------------------------------------------------------
  const rows = h('tbody', { id: 'business-rows' });
  const noBusinesses = h('p', { class: 'empty' }, 'No businesses yet. Create the first one below.');
  const more = h('button', { type: 'button', class: 'btn', id: 'load-more', hidden: true }, 'Show more');
  const shown = h('p', { class: 'muted', id: 'business-shown' });
  const table = h('div', { class: 'table-wrap' },
    h('table', { class: 'table', id: 'business-table' },
      h('caption', { class: 'sr-only' }, 'Businesses, newest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Name'),
        h('th', { scope: 'col' }, 'Booking page'),
        h('th', { scope: 'col' }, 'Owner'),
        h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')),
      )),
      rows,
    ),
  );
  const businessCard = h('section', { class: 'card', 'aria-labelledby': 'biz-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'biz-title' }, 'Recent businesses')),
    noBusinesses, table, h('div', { class: 'actions' }, shown, more),
  );
  let cursor = null;
  let expanded = false;
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const page = await api.businesses({ limit: 50, cursor: expanded ? cursor : undefined });
      expanded = true;
      cursor = page.next_cursor;
      live.store.set((s) => {
        const known = new Set(s.businesses.map((b) => b.id));
        const businesses = [...s.businesses, ...page.items.filter((b) => !known.has(b.id))];
        return { ...s, businesses, businessesLimit: Infinity };
      });
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      more.disabled = false;
    }
  });
  const renderBusinesses = (s) => {
    const list = s.businesses;
    noBusinesses.hidden = list.length > 0;
    table.hidden = list.length === 0;
    keyedList(rows, list, (b) => b.id, (b) => businessRow(b), updateBusinessRow);
    const total = s.stats?.business_count ?? list.length;
    setText(shown, list.length ? `Showing ${Math.min(list.length, total)} of ${total}` : '');
    more.hidden = list.length >= total || (expanded && !cursor);
  };
  stops.push(watch(live.store, (s) => s.businesses, (_, s) => renderBusinesses(s)));
  stops.push(watch(live.store, (s) => s.stats, (_, s) => renderBusinesses(s)));

  function businessRow(b) {
    const tr = h('tr', {},
      h('td', { class: 'b-name' }),
      h('td', { class: 'b-sub', 'data-label': 'Booking page', title: `/b/${b.subdomain}/` }, h('a', { href: `/b/${b.subdomain}/` }, `/b/${b.subdomain}/`)),
      h('td', { class: 'b-owner', 'data-label': 'Owner' }, h('span', { class: 'clip' })),
      h('td', { class: 'b-created', 'data-label': 'Created' }, formatDateTime(b.created_at)),
      h('td', { class: 'b-actions' },
        h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'edit', onclick: () => editBusiness(tr.business) }, 'Edit'),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-action': 'delete', onclick: () => deleteBusiness(tr.business) }, 'Delete'),
      ),
    );
    updateBusinessRow(tr, b);
    return tr;
  }

  function updateBusinessRow(tr, b) {
    tr.business = b;
    setText(tr.querySelector('.b-name'), b.name);
    const owner = tr.querySelector('.b-owner');
    setText(owner.firstChild, b.owner_email);
    owner.title = b.owner_email; // the whole address, where it is shown cut with "…"
    const [edit, del] = tr.querySelectorAll('button');
    edit.setAttribute('aria-label', `Edit ${b.name}`);
    del.setAttribute('aria-label', `Delete ${b.name}`);
  }

  function editBusiness(b) {
    const form = h('form', { class: 'form', novalidate: true, id: 'edit-business-form' },
      field({ name: 'name', label: 'Name', required: true, maxlength: 200, value: b.name }),
      field({ name: 'owner_email', label: 'Owner email', type: 'email', required: true, value: b.owner_email }),
      formError(),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save'),
      ),
    );
    const dialog = modal(`Edit ${b.name}`, form);
    onSubmit(form, async (values) => {
      await api.updateBusiness(b.id, values);
      dialog.close();
      toast(`Saved “${values.name}”.`);
    });
  }

  async function deleteBusiness(b) {
    const ok = await confirmDialog({
      title: `Delete ${b.name}?`,
      message: 'The business and all its reservations will be deleted. This cannot be undone.',
      confirmLabel: 'Delete business',
    });
    if (!ok) return;
    try {
      await api.deleteBusiness(b.id);
      toast(`Deleted “${b.name}”.`);
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  // --- forms ------------------------------------------------------------------------------
  const createForm = h('form', { class: 'card form', id: 'create-business-form', novalidate: true, 'aria-labelledby': 'create-title' },
    h('h2', { id: 'create-title' }, 'New business'),
    field({ name: 'name', label: 'Name', required: true, maxlength: 200, autocomplete: 'organization' }),
    field({ name: 'subdomain', label: 'Subdomain', required: true, maxlength: 63, autocapitalize: 'none', spellcheck: 'false', hint: 'Lower-case letters, digits and “-”; it names the booking page /b/<subdomain>/.' }),
    field({ name: 'owner_email', label: 'Owner email', type: 'email', required: true, autocomplete: 'email' }),
    formError(),
    h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create business'),
  );
  onSubmit(createForm, async (values) => {
    const b = await api.createBusiness(values);
    createForm.reset();
    toast(`Created “${b.name}”.`);
  });

  const ownerForm = h('form', { class: 'card form', id: 'create-owner-form', novalidate: true, 'aria-labelledby': 'owner-title' },
    h('h2', { id: 'owner-title' }, 'New owner account'),
    h('p', { class: 'muted' }, 'An owner sees the businesses whose owner email is theirs.'),
    field({ name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'off' }),
    field({ name: 'password', label: 'Password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password', hint: 'At least 8 characters.' }),
    formError(),
    h('button', { type: 'submit', class: 'btn' }, 'Create owner'),
  );
  onSubmit(ownerForm, async (values) => {
    const u = await api.createUser({ ...values, role: 'business_owner' });
    ownerForm.reset();
    toast(`Created the owner account ${u.email}.`);
  });

  // --- page -----------------------------------------------------------------------------
  const feed = renderFeed(live);
  stops.push(feed.stop);
  const problem = h('p', { class: 'notice', role: 'alert', id: 'load-error', hidden: true });
  stops.push(watch(live.store, (s) => s.loadError, (msg) => {
    problem.hidden = !msg;
    setText(problem, msg ? `Could not load the dashboard: ${msg}` : '');
  }));
  replace(main,
    h('h1', { class: 'sr-only' }, 'Dashboard'),
    problem,
    stats,
    charts,
    h('div', { class: 'columns' },
      h('div', { class: 'col-main' }, businessCard, feed.section),
      h('div', { class: 'col-side' }, createForm, ownerForm),
    ),
  );
  document.title = 'Dashboard';
  const unbind = shell.bind(live);
  live.start();

  return () => {
    unbind();
    live.stop();
    clearInterval(minuteTimer);
    resize.disconnect();
    stops.forEach((stop) => stop());
  };
}
