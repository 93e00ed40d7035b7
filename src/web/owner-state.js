// owner-state.js — the pure part of an owner's live view over `/ws/owner/`: every business
// they own and the upcoming appointments of all of them, kept right by each event.
//
// Added to the common state (state.js) through LiveState's `reduce` and `snapshot` hooks:
// - `owned`: the owner's businesses; a `business_updated` naming them as owner adds one
//   (a business reassigned to them), one naming someone else removes it (reassigned away);
// - `upcoming`: confirmed reservations from now on, of all owned businesses, soonest first;
// - `upcomingCount[bid]`: the server's count of them (lists load at most a page each);
//   a business with no entry has not been loaded yet (the view fetches it);
// - `ownerNotice`: the last business that came or went, for the page to say so.
// Applying an event twice is harmless: lists are keyed by id, counts move only when an
// item enters or leaves the list.

/** The sessionStorage key of the business on screen ('' for all); a notification's
 * `?business=` link (pwa.js) sets it before the owner view mounts. */
export const OWNER_BUSINESS_KEY = 'app.ownerBusiness';

/** The owner's email as the server compares it (API.md: emails are case-insensitive). */
const same = (a, b) => String(a ?? '').toLowerCase() === String(b ?? '').toLowerCase();

/** Soonest first; equal starts in booking order. */
export function byStart(a, b) {
  return String(a.starts_at).localeCompare(String(b.starts_at)) || String(a.created_at).localeCompare(String(b.created_at));
}

/** Fields an owner's LiveState starts with. */
export function initialOwnerState(filterId = '') {
  return { owned: [], upcoming: [], upcomingCount: {}, upcomingCursor: {}, filterId, ownerNotice: null };
}

/** Whether `r` belongs in the upcoming list at `now` (ms). */
export function isUpcoming(r, now = Date.now()) {
  return r?.status === 'confirmed' && Date.parse(r.starts_at) >= now;
}

function withoutBusiness(s, id) {
  const { [id]: _count, ...upcomingCount } = s.upcomingCount;
  const { [id]: _cursor, ...upcomingCursor } = s.upcomingCursor;
  return {
    ...s,
    owned: s.owned.filter((b) => b.id !== id),
    upcoming: s.upcoming.filter((r) => r.business_id !== id),
    upcomingCount,
    upcomingCursor,
    filterId: s.filterId === id ? '' : s.filterId,
  };
}

/**
 * Applies one event frame to the owner's part of `state` (whose `user.email` is the owner).
 * `now` decides whether a new booking is upcoming.
 */
export function reduceOwner(state, ev, now = Date.now()) {
  const p = ev.payload || {};
  switch (ev.type) {
    case 'business_created':
    case 'business_updated': {
      const b = p.business;
      if (!b?.id) return state;
      const mine = state.owned.some((x) => x.id === b.id);
      if (same(b.owner_email, state.user?.email)) {
        if (mine) return state; // a rename: reduceEvent replaced it already
        return { ...state, owned: [...state.owned, b].sort((x, y) => x.name.localeCompare(y.name)), ownerNotice: { id: b.id, name: b.name, why: 'added', at: ev.id } };
      }
      if (!mine) return state;
      return { ...withoutBusiness(state, b.id), ownerNotice: { id: b.id, name: nameOf(state, b), why: 'reassigned', at: ev.id } };
    }
    case 'business_deleted': {
      const b = p.business;
      if (!b?.id || !(b.id in state.upcomingCount || state.owned.some((x) => x.id === b.id) || state.filterId === b.id)) return state;
      return { ...withoutBusiness(state, b.id), ownerNotice: { id: b.id, name: nameOf(state, b), why: 'deleted', at: ev.id } };
    }
    case 'reservation_created': {
      const r = p.reservation;
      const bid = p.business_id ?? r?.business_id;
      if (!r?.id || !(bid in state.upcomingCount) || !isUpcoming(r, now)) return state;
      if (state.upcoming.some((x) => x.id === r.id)) return state;
      return {
        ...state,
        upcoming: [...state.upcoming, { ...r, business_id: bid }].sort(byStart),
        upcomingCount: { ...state.upcomingCount, [bid]: state.upcomingCount[bid] + 1 },
      };
    }
    case 'reservation_cancelled': {
      const r = p.reservation;
      const bid = p.business_id ?? r?.business_id;
      if (!r?.id || !state.upcoming.some((x) => x.id === r.id)) return state;
      return {
        ...state,
        upcoming: state.upcoming.filter((x) => x.id !== r.id),
        upcomingCount: { ...state.upcomingCount, [bid]: Math.max(0, (state.upcomingCount[bid] ?? 1) - 1) },
      };
    }
    default:
      return state;
  }
}

function nameOf(state, b) {
  return state.owned.find((x) => x.id === b.id)?.name ?? b.name ?? 'A business';
}

/**
 * Applies the owner's part of a REST snapshot: `owned` (the business list) and `upcoming`
 * (`{[bid]: page}` of `?upcoming=true` answers; a page replaces that business's items).
 * Pages of businesses no longer owned are dropped; `more: true` appends a next page.
 */
export function applyOwnerSnapshot(state, snap) {
  if (snap.owned) {
    const owned = [...snap.owned].sort((x, y) => x.name.localeCompare(y.name));
    state = { ...state, owned, filterId: owned.some((b) => b.id === state.filterId) ? state.filterId : '' };
  }
  if (!snap.upcoming) return state;
  const owned = new Set(state.owned.map((b) => b.id));
  let { upcoming } = state;
  const upcomingCount = { ...state.upcomingCount };
  const upcomingCursor = { ...state.upcomingCursor };
  for (const [bid, page] of Object.entries(snap.upcoming)) {
    if (!owned.has(bid)) continue;
    const items = (page.items || []).map((r) => ({ ...r, business_id: r.business_id ?? bid }));
    const ids = new Set(items.map((r) => r.id));
    upcoming = [...upcoming.filter((r) => (snap.more ? !ids.has(r.id) : r.business_id !== bid)), ...items];
    upcomingCount[bid] = page.count ?? items.length;
    upcomingCursor[bid] = page.next_cursor ?? null;
  }
  // Businesses gone meanwhile (a full snapshot lists them all) leave nothing behind.
  if (snap.owned) {
    upcoming = upcoming.filter((r) => owned.has(r.business_id));
    for (const bid of Object.keys(upcomingCount)) {
      if (!owned.has(bid)) {
        delete upcomingCount[bid];
        delete upcomingCursor[bid];
      }
    }
  }
  return { ...state, upcoming: upcoming.sort(byStart), upcomingCount, upcomingCursor };
}

/** Whether RFC 3339 `value` falls on the local calendar day of `now` (ms). */
export function isToday(value, now = Date.now()) {
  const d = new Date(value);
  const t = new Date(now);
  return d.getFullYear() === t.getFullYear() && d.getMonth() === t.getMonth() && d.getDate() === t.getDate();
}

/**
 * What the page shows for filter `filterId` ('' = all) at `now`: the upcoming list (those
 * whose start passed since loading are left out), today's among them, and per business
 * `{upcoming, today}` counts.
 */
export function ownerView(state, now = Date.now()) {
  const live = state.upcoming.filter((r) => Date.parse(r.starts_at) >= now);
  const counts = {};
  for (const b of state.owned) {
    const passed = state.upcoming.filter((r) => r.business_id === b.id).length - live.filter((r) => r.business_id === b.id).length;
    counts[b.id] = {
      upcoming: Math.max(0, (state.upcomingCount[b.id] ?? 0) - passed),
      today: live.filter((r) => r.business_id === b.id && isToday(r.starts_at, now)).length,
      loaded: b.id in state.upcomingCount,
    };
  }
  const shown = state.filterId ? live.filter((r) => r.business_id === state.filterId) : live;
  return { upcoming: shown, today: shown.filter((r) => isToday(r.starts_at, now)), counts };
}
