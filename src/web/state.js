// state.js — the live state the views subscribe to (the seed's `WebSocketContext`).
//
// Three layers:
// - `createStore`: a value plus subscribers; views re-render the slices they watch;
// - `reduceEvent` / `applySnapshot`: pure functions from (state, event frame or REST
//   snapshot) to the next state. Lists are keyed by id, so applying an event twice is
//   harmless; counters only count events newer than the snapshot they started from
//   (`sinceId`), so an event already included in a REST answer is never counted twice;
// - `LiveState`: owns one Connection and the REST client; loads a snapshot on the first
//   connection and on `resync_required`, applies live events, and reconciles the few
//   numbers an event cannot update exactly (a deleted business's reservations).

import { Connection } from './connection.js';

/** The activity log and the notification list hold this many events (API.md: 50). */
export const FEED_LIMIT = 50;
/** How many older events one "Load older" asks for. */
export const OLDER_PAGE = 50;
/** The events-per-minute chart covers this long. */
export const CHART_WINDOW_MS = 60 * 60 * 1000;

/**
 * A value with subscribers.
 * `set(patch)` merges an object, or takes a function of the current state.
 * Subscribers run after each change with (state, previous).
 */
export function createStore(initial) {
  let state = initial;
  const subscribers = new Set();
  return {
    get: () => state,
    set(patch) {
      const next = typeof patch === 'function' ? patch(state) : { ...state, ...patch };
      if (next === state) return;
      const prev = state;
      state = next;
      for (const fn of [...subscribers]) fn(state, prev);
    },
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
  };
}

/**
 * Calls `fn(slice, state)` now and whenever `select(state)` returns a different value
 * (by identity). Returns the unsubscribe function.
 */
export function watch(store, select, fn) {
  let last = select(store.get());
  fn(last, store.get());
  return store.subscribe((state) => {
    const next = select(state);
    if (next !== last) {
      last = next;
      fn(next, state);
    }
  });
}

/** The state before anything is loaded. */
export function initialState(user) {
  return {
    user,
    role: user?.role ?? null,
    connection: { status: 'connecting', detail: {} },
    loaded: false,
    /** Newest event id seen anywhere (REST or socket); "mark all read" marks up to it. */
    maxEventId: 0,
    /**
     * The feed: `items` newest first, at most `limit` (50, grown by each "Load older" page);
     * `nextBefore` is the id to page back from (API.md `next_before`), null at the start of
     * the retained history, undefined while not known (a filter's first page not in yet).
     */
    activity: { filter: '', items: [], nextBefore: null, limit: FEED_LIMIT },
    notifications: { unread: 0, items: [], sinceId: 0 },
    /** `[{id, t}]` (ms) of events in the chart window, oldest first. */
    eventTimes: [],
    // super admin
    stats: null,
    businesses: [],
    /** The list shows the newest 10 (the dashboard's "recent"), or all loaded after "Show more". */
    businessesLimit: 10,
    perBusiness: {},
    // business owner
    owned: [],
    selectedId: null,
    reservations: [],
    reservationsCount: 0,
    reservationsCursor: null,
  };
}

// --- small immutable list helpers ----------------------------------------------------------

const byNewest = (a, b) => String(b.created_at).localeCompare(String(a.created_at));

/** `list` with `item` replaced by id, or added at the front when new. */
export function upsertFront(list, item, limit = Infinity) {
  if (!item || !item.id) return list;
  const i = list.findIndex((x) => x.id === item.id);
  if (i >= 0) return list.map((x, j) => (j === i ? item : x));
  return [item, ...list].slice(0, limit);
}

/** `list` with the item of `item.id` replaced; unchanged when absent. */
export function replaceById(list, item) {
  if (!item || !list.some((x) => x.id === item.id)) return list;
  return list.map((x) => (x.id === item.id ? item : x));
}

function removeById(list, id) {
  return list.some((x) => x.id === id) ? list.filter((x) => x.id !== id) : list;
}

/** Events newest first, deduplicated by id, at most `limit`. */
export function mergeEvents(list, events, limit = FEED_LIMIT) {
  const seen = new Map();
  for (const e of [...events, ...list]) if (Number.isInteger(e.id) && !seen.has(e.id)) seen.set(e.id, e);
  return [...seen.values()].sort((a, b) => b.id - a.id).slice(0, limit);
}

/**
 * The feed with `events` merged in. When its oldest items fall off the end, paging back
 * resumes from the oldest one kept (`before` is exclusive), so none is skipped.
 */
export function withActivity(activity, events) {
  const items = mergeEvents(activity.items, events, activity.limit);
  const oldest = items[items.length - 1]?.id;
  const dropped = oldest !== undefined && activity.items.some((e) => e.id < oldest);
  return { ...activity, items, nextBefore: dropped ? oldest : activity.nextBefore };
}

/**
 * The feed once the filter is set to `type` ('' for all), until the server's page of that
 * type arrives: what was shown, filtered here, with `nextBefore` undefined, since whether
 * older events of that type exist is not known (the feed then neither offers "Load older"
 * nor says the history starts here). Whatever answers it next (that page, a snapshot) sets
 * it; if the request fails, it stays unknown.
 */
export function filteringActivity(activity, type) {
  return {
    filter: type,
    items: activity.items.filter((e) => !type || e.type === type),
    nextBefore: undefined,
    limit: FEED_LIMIT,
  };
}

/** The feed with an older page (`{items, next_before}`) appended; it may hold more from now on. */
export function withOlderPage(activity, page) {
  const items = mergeEvents(activity.items, page.items || [], Infinity);
  return { ...activity, items, limit: Math.max(activity.limit, items.length), nextBefore: page.next_before ?? null };
}

function maxId(events) {
  return events.reduce((m, e) => (Number.isInteger(e.id) && e.id > m ? e.id : m), 0);
}

function eventTimesFrom(events, now) {
  return events
    .map((e) => ({ id: e.id, t: Date.parse(e.timestamp) }))
    .filter((x) => Number.isFinite(x.t) && x.t > now - CHART_WINDOW_MS);
}

function withEventTimes(times, events, now = Date.now()) {
  const known = new Set(times.map((x) => x.id));
  const added = eventTimesFrom(events, now).filter((x) => !known.has(x.id));
  return [...times, ...added].filter((x) => x.t > now - CHART_WINDOW_MS).sort((a, b) => a.t - b.t);
}

// --- reducers -------------------------------------------------------------------------------

/**
 * Applies one event frame (API.md: `{id, type, payload, timestamp}`).
 * Safe to apply again: lists are keyed by id, and each counter group remembers the newest
 * event it reflects (`sinceId`, first from its REST snapshot) and skips anything not newer.
 */
export function reduceEvent(state, ev) {
  const p = ev.payload || {};
  let s = { ...state, maxEventId: Math.max(state.maxEventId, ev.id) };

  // Every event: the feed (when it passes the filter), the bell, the chart.
  if (!s.activity.filter || s.activity.filter === ev.type) {
    s.activity = withActivity(s.activity, [ev]);
  }
  const n = s.notifications;
  if (ev.id > n.sinceId && !n.items.some((x) => x.id === ev.id)) {
    s.notifications = { unread: n.unread + 1, items: mergeEvents(n.items, [ev]), sinceId: ev.id };
  }
  s.eventTimes = withEventTimes(s.eventTimes, [ev]);

  const fresh = s.stats && ev.id > s.stats.sinceId;
  const bump = (key, by) => ({ ...s.stats, [key]: Math.max(0, s.stats[key] + by) });
  switch (ev.type) {
    case 'business_created':
      if (s.role === 'super_admin' && p.business) {
        if (fresh) s.stats = bump('business_count', 1);
        s.businesses = upsertFront(s.businesses, p.business, s.businessesLimit);
        if (!(p.business.id in s.perBusiness)) s.perBusiness = { ...s.perBusiness, [p.business.id]: 0 };
      }
      break;
    case 'business_updated':
      s.businesses = replaceById(s.businesses, p.business);
      s.owned = replaceById(s.owned, p.business);
      break;
    case 'business_deleted': {
      const id = p.business?.id;
      if (fresh) s.stats = bump('business_count', -1); // its reservations: reloaded (LiveState)
      s.businesses = removeById(s.businesses, id);
      s.owned = removeById(s.owned, id);
      if (id in s.perBusiness) {
        const { [id]: _gone, ...rest } = s.perBusiness;
        s.perBusiness = rest;
      }
      break;
    }
    case 'reservation_created': {
      const r = p.reservation;
      const bid = p.business_id ?? r?.business_id;
      if (fresh) s.stats = bump('reservation_count', 1);
      if (r && bid === s.selectedId && !s.reservations.some((x) => x.id === r.id)) {
        s.reservations = upsertFront(s.reservations, r);
        s.reservationsCount += 1;
      }
      break;
    }
    case 'reservation_cancelled':
      if (p.reservation) s.reservations = replaceById(s.reservations, p.reservation);
      break;
    default:
      break;
  }
  // The counters now reflect everything up to this id (events arrive in id order).
  if (fresh) s.stats = { ...s.stats, sinceId: ev.id };
  return s;
}

/**
 * Applies `notifications_read` (`{up_to, unread}`): a read receipt from any tab of this user.
 * The server's count is the truth; events newer than `up_to` that arrive later still count.
 */
export function reduceRead(state, payload) {
  const n = state.notifications;
  const upTo = Number(payload?.up_to) || 0;
  const unread = Number.isInteger(payload?.unread) ? payload.unread : 0;
  return { ...state, notifications: { ...n, unread, sinceId: Math.max(n.sinceId, upTo) } };
}

/**
 * Replaces what a REST snapshot covers. `snap` may hold any of: `dashboard`, `activity`,
 * `notifications`, `owned`, `reservations` (a page: `{items, count}`), `selectedId`.
 */
export function applySnapshot(state, snap, now = Date.now()) {
  const s = { ...state, loaded: true };
  if (snap.dashboard) {
    const d = snap.dashboard;
    s.stats = {
      business_count: d.business_count,
      reservation_count: d.reservation_count,
      connections: d.connections,
      sinceId: d.last_event_id ?? 0,
    };
    // Businesses loaded past the first 10 ("load more") stay; the newest 10 are replaced.
    const recent = d.recent_businesses || [];
    const recentIds = new Set(recent.map((b) => b.id));
    const older = s.businesses.filter((b) => !recentIds.has(b.id) && recent.length && byNewest(recent[recent.length - 1], b) < 0);
    s.businesses = [...recent, ...older];
    s.maxEventId = Math.max(s.maxEventId, d.last_event_id ?? 0);
  }
  if (snap.activity) {
    s.activity = {
      ...s.activity,
      items: mergeEvents([], snap.activity.items || []),
      nextBefore: snap.activity.next_before ?? null,
      limit: FEED_LIMIT,
    };
    if (!s.activity.filter) s.eventTimes = withEventTimes([], snap.activity.items || [], now);
    s.maxEventId = Math.max(s.maxEventId, maxId(snap.activity.items || []));
  }
  if (snap.notifications) {
    const items = mergeEvents([], snap.notifications.items || []);
    // Any event newer than the newest listed one was committed after this answer.
    s.notifications = { unread: snap.notifications.unread ?? 0, items, sinceId: maxId(items) };
    s.maxEventId = Math.max(s.maxEventId, maxId(items));
  }
  if (snap.perBusiness) s.perBusiness = snap.perBusiness;
  if (snap.owned) s.owned = snap.owned;
  if ('selectedId' in snap) s.selectedId = snap.selectedId;
  if (snap.reservations) {
    s.reservations = snap.reservations.items || [];
    s.reservationsCount = snap.reservations.count ?? s.reservations.length;
    s.reservationsCursor = snap.reservations.next_cursor ?? null;
  }
  return s;
}

// --- the provider ---------------------------------------------------------------------------

/**
 * The live state of one signed-in view: a store fed by REST snapshots and one channel.
 * `load()` returns the snapshot for `applySnapshot`; the view passes it in, so the same
 * class serves the super admin's dashboard channel and an owner's business channel.
 */
export class LiveState {
  /**
   * @param {object} o
   * @param {ReturnType<import('./api.js').createApi>} o.api
   * @param {object} o.user `{id, email, role}`
   * @param {() => string|null} o.getToken
   * @param {string} o.channel WebSocket path
   * @param {(state: object) => Promise<object>} o.load builds a snapshot over REST
   * @param {(reason: string) => void} o.onStop the channel closed for good
   * @param {object} [o.initial] fields to start with (e.g. an owner's `selectedId`)
   * @param {(state: object, ev: object) => object} [o.reduce] the view's own reducer, run
   *   after `reduceEvent` on every event (same rule: applying an event twice is harmless)
   * @param {(state: object, snap: object) => object} [o.snapshot] the view's own part of
   *   `applySnapshot`
   */
  constructor({ api, user, getToken, channel, load, onStop, initial = {}, reduce = (s) => s, snapshot = (s) => s }) {
    this.api = api;
    this.load = load;
    this.reduce = (s, ev) => reduce(reduceEvent(s, ev), ev);
    this.applySnapshot = (s, snap) => snapshot(applySnapshot(s, snap), snap);
    this.store = createStore({ ...initialState(user), ...initial });
    this.generation = 0;
    /** One list per REST reload in flight: the events it must re-apply. */
    this.buffers = new Set();
    /** Businesses whose reservation count changed since the chart last fetched it. */
    this.pendingCounts = new Set();
    this.timers = new Map();
    this.connection = new Connection({
      path: channel,
      getToken,
      onEvent: (ev) => this.onEvent(ev),
      onMessage: (frame) => this.onMessage(frame),
      onResync: () => this.refresh(),
      onStatus: (status, detail) => this.store.set({ connection: { status, detail } }),
      onStop: (reason, code) => onStop?.(reason, code),
    });
  }

  start() {
    this.connection.start();
  }

  stop() {
    this.connection.stop();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.generation += 1;
  }

  /**
   * Loads a fresh snapshot. Events that arrive meanwhile are applied at once (for speed)
   * and again on top of the snapshot (so none is lost); the reducers make that safe.
   */
  async refresh() {
    const gen = ++this.generation;
    try {
      await this.reload(() => this.load(this.store.get()), () => gen === this.generation);
    } catch (err) {
      if (gen !== this.generation || err?.status === 401) return; // 401: back to login already
      this.store.set({ loadError: err?.message || String(err) });
      this.later('refresh', 3000, () => this.refresh());
    }
  }

  /**
   * Fetches part of the state (`fetch()` resolves to a snapshot for `applySnapshot`), then
   * applies it followed by every event received while it was in flight.
   * `current()` says whether the answer is still wanted.
   */
  async reload(fetch, current = () => true) {
    const buffer = [];
    this.buffers.add(buffer);
    try {
      const snap = await fetch();
      if (!current()) return;
      let s = this.applySnapshot(this.store.get(), snap);
      for (const ev of buffer) s = this.reduce(s, ev);
      this.store.set({ ...s, loadError: null });
    } finally {
      this.buffers.delete(buffer);
    }
  }

  onEvent(ev) {
    for (const buffer of this.buffers) buffer.push(ev);
    this.store.set((s) => this.reduce(s, ev));
    // What an event cannot say exactly is reloaded shortly after (several events, one fetch).
    if (this.store.get().stats && ['business_deleted', 'reservation_cancelled'].includes(ev.type)) {
      this.later('stats', 500, () => this.reloadQuietly(async () => ({ dashboard: await this.api.dashboard() })));
    }
    // Reservations per business (the chart): counted by the server, fetched after a change.
    const bid = ev.payload?.business_id ?? ev.payload?.reservation?.business_id;
    if (ev.type.startsWith('reservation_') && bid in this.store.get().perBusiness) {
      this.pendingCounts.add(bid);
      this.later('counts', 300, () => this.reloadCounts());
    }
  }

  async reloadCounts() {
    const ids = [...this.pendingCounts];
    this.pendingCounts.clear();
    const counts = await Promise.all(
      ids.map((id) => this.api.reservations(id, { limit: 1 }).then((r) => [id, r.count], () => null)),
    );
    this.store.set((s) => {
      const perBusiness = { ...s.perBusiness };
      for (const entry of counts) if (entry && entry[0] in perBusiness) perBusiness[entry[0]] = entry[1];
      return { ...s, perBusiness };
    });
  }

  onMessage(frame) {
    if (frame.type === 'notifications_read') {
      this.store.set((s) => reduceRead(s, frame.payload));
      // Events and receipts race on the wire: confirm the count with the server.
      this.later('notifications', 400, () =>
        this.reloadQuietly(async () => ({ notifications: await this.api.notifications() })),
      );
    }
  }

  /** Marks everything seen so far read (a read receipt for all this user's tabs). */
  async markAllRead() {
    const s = this.store.get();
    const upTo = Math.max(s.maxEventId, this.connection.lastEventId ?? 0, s.notifications.items[0]?.id ?? 0);
    if (!upTo) return;
    const res = await this.api.markRead(upTo);
    this.store.set((st) => reduceRead(st, { up_to: upTo, unread: res?.unread ?? 0 }));
  }

  /**
   * Shows only events of `type` in the feed ('' for all): the server's answer among its last
   * 50, then older pages of that type on demand (`loadOlderActivity`).
   */
  async setActivityFilter(type) {
    this.store.set((s) => ({ ...s, activity: filteringActivity(s.activity, type) }));
    const res = await this.api.activity(type);
    this.store.set((s) =>
      s.activity.filter === type
        ? { ...s, activity: { filter: type, items: mergeEvents(s.activity.items, res.items || []), nextBefore: res.next_before ?? null, limit: FEED_LIMIT } }
        : s,
    );
  }

  /** Appends the page of events before the oldest shown (same filter); false at the start. */
  async loadOlderActivity() {
    const { filter, nextBefore } = this.store.get().activity;
    if (nextBefore == null) return false; // the start of the history, or not known yet
    const page = await this.api.activity(filter, { before: nextBefore, limit: OLDER_PAGE });
    this.store.set((s) =>
      s.activity.filter === filter && s.activity.nextBefore === nextBefore ? { ...s, activity: withOlderPage(s.activity, page) } : s,
    );
    return true;
  }

  /** `reload`, with failures left to the next event or reconnect. */
  async reloadQuietly(fetch) {
    const gen = this.generation;
    try {
      await this.reload(fetch, () => gen === this.generation);
    } catch {
      /* nothing to do: the next event or reconnect brings fresh numbers */
    }
  }

  later(key, ms, fn) {
    if (this.timers.has(key)) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        fn();
      }, ms),
    );
  }
}
