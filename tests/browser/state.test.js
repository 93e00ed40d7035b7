// The pure parts of the client, run in Node (no browser): the state reducers, the chart
// bucketing, the backoff. These are the guarantees the live views rest on.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, reduceEvent, reduceRead, applySnapshot, mergeEvents, withOlderPage, filteringActivity } from '../../src/web/state.js';
import { initialOwnerState, reduceOwner, applyOwnerSnapshot, ownerView } from '../../src/web/owner-state.js';
import { perMinute, niceMax } from '../../src/web/chart.js';
import { backoffDelay } from '../../src/web/connection.js';

const admin = { id: 'u1', email: 'admin@example.com', role: 'super_admin' };
const business = (id, name = id) => ({ id, name, subdomain: id, owner_email: 'o@example.com', created_at: `2026-01-01T00:00:0${id.length}Z` });
const ev = (id, type, payload = {}) => ({ id, type, payload: { message: `${type} ${id}`, ...payload }, timestamp: new Date().toISOString() });

function adminState(lastEventId = 10) {
  return applySnapshot(initialState(admin), {
    dashboard: { business_count: 3, reservation_count: 5, connections: 1, last_event_id: lastEventId, recent_businesses: [business('c'), business('b'), business('a')] },
    activity: { items: [ev(10, 'business_created'), ev(9, 'business_created')] },
    notifications: { unread: 2, items: [ev(10, 'business_created'), ev(9, 'business_created')] },
    perBusiness: { a: 1, b: 2, c: 2 },
  });
}

describe('state reducers', () => {
  it('a filter being loaded knows neither older pages nor the start of the history', () => {
    const s = adminState();
    const filtering = filteringActivity(s.activity, 'business_created');
    assert.equal(filtering.nextBefore, undefined);
    assert.deepEqual(filtering.items.map((e) => e.id), [10, 9]);
    assert.deepEqual(filteringActivity(s.activity, 'reservation_created').items, []);
    // A live event while the page loads is shown and keeps the feed not knowing.
    const live = reduceEvent({ ...s, activity: filtering }, ev(11, 'business_created', { business: business('eeee') }));
    assert.equal(live.activity.items[0].id, 11);
    assert.equal(live.activity.nextBefore, undefined);
    // A snapshot taken meanwhile (a reconnect) answers it.
    const snapped = applySnapshot(live, { activity: { items: [], next_before: 4 } });
    assert.equal(snapped.activity.nextBefore, 4);
    assert.equal(snapped.activity.filter, 'business_created');
  });

  it('counts an event newer than the snapshot once, even when applied twice', () => {
    const e = ev(11, 'business_created', { business: business('dddd') });
    const once = reduceEvent(adminState(), e);
    const twice = reduceEvent(once, e);
    for (const s of [once, twice]) {
      assert.equal(s.stats.business_count, 4);
      assert.equal(s.businesses[0].id, 'dddd');
      assert.equal(s.businesses.length, 4);
      assert.equal(s.activity.items[0].id, 11);
      assert.equal(s.activity.items.length, 3);
      assert.equal(s.notifications.unread, 3);
      assert.equal(s.maxEventId, 11);
    }
  });

  it('does not count an event the REST snapshot already included', () => {
    const s = reduceEvent(adminState(12), ev(11, 'reservation_created', { business_id: 'a', reservation: { id: 'r', business_id: 'a' } }));
    assert.equal(s.stats.reservation_count, 5);
  });

  it('replays buffered events on a newer snapshot without regressing an update', () => {
    // Event 11 renamed b to "B1", event 12 to "B2"; the snapshot (at 12) already says B2.
    const snap = adminState(12);
    const withB2 = { ...snap, businesses: snap.businesses.map((b) => (b.id === 'b' ? { ...b, name: 'B2' } : b)) };
    let s = reduceEvent(withB2, ev(11, 'business_updated', { business: { ...business('b'), name: 'B1' } }));
    s = reduceEvent(s, ev(12, 'business_updated', { business: { ...business('b'), name: 'B2' } }));
    assert.equal(s.businesses.find((b) => b.id === 'b').name, 'B2');
  });

  it('keeps at most 10 recent businesses and 50 feed items', () => {
    let s = adminState();
    for (let i = 0; i < 60; i++) s = reduceEvent(s, ev(100 + i, 'business_created', { business: business(`x${i}`) }));
    assert.equal(s.businesses.length, 10);
    assert.equal(s.businesses[0].id, 'x59');
    assert.equal(s.activity.items.length, 50);
    assert.equal(s.stats.business_count, 63);
  });

  it('filters live events into the feed by type', () => {
    let s = { ...adminState(), activity: { filter: 'reservation_created', items: [] } };
    s = reduceEvent(s, ev(11, 'business_created', { business: business('zz') }));
    s = reduceEvent(s, ev(12, 'reservation_created', { business_id: 'a', reservation: { id: 'r1', business_id: 'a' } }));
    assert.deepEqual(s.activity.items.map((e) => e.id), [12]);
  });

  it('removes a deleted business everywhere and counts it', () => {
    const s = reduceEvent(adminState(), ev(11, 'business_deleted', { business: business('b') }));
    assert.deepEqual(s.businesses.map((b) => b.id), ['c', 'a']);
    assert.equal(s.stats.business_count, 2);
    assert.ok(!('b' in s.perBusiness));
  });

  it("adds a reservation to the owner's list once and follows its cancellation", () => {
    const owner = { id: 'u2', email: 'o@example.com', role: 'business_owner' };
    let s = applySnapshot({ ...initialState(owner), selectedId: 'a' }, { reservations: { items: [], count: 0, next_cursor: null } });
    const r = { id: 'r1', business_id: 'a', customer_name: 'X', status: 'confirmed' };
    s = reduceEvent(s, ev(5, 'reservation_created', { business_id: 'a', reservation: r }));
    s = reduceEvent(s, ev(5, 'reservation_created', { business_id: 'a', reservation: r }));
    assert.equal(s.reservations.length, 1);
    assert.equal(s.reservationsCount, 1);
    s = reduceEvent(s, ev(6, 'reservation_cancelled', { business_id: 'a', reservation: { ...r, status: 'cancelled' } }));
    assert.equal(s.reservations[0].status, 'cancelled');
    // Another business's reservation never lands in this owner's list.
    s = reduceEvent(s, ev(7, 'reservation_created', { business_id: 'other', reservation: { ...r, id: 'r2', business_id: 'other' } }));
    assert.equal(s.reservations.length, 1);
  });

  it('takes the unread count from a read receipt and counts only later events', () => {
    let s = reduceRead(adminState(), { up_to: 10, unread: 0 });
    assert.equal(s.notifications.unread, 0);
    s = reduceEvent(s, ev(10, 'business_created', { business: business('late-replay') }));
    assert.equal(s.notifications.unread, 0, 'an event the receipt covered');
    s = reduceEvent(s, ev(11, 'business_created', { business: business('new') }));
    assert.equal(s.notifications.unread, 1);
  });

  it('merges event lists newest first without duplicates', () => {
    assert.deepEqual(mergeEvents([ev(3, 't'), ev(1, 't')], [ev(2, 't'), ev(3, 't')]).map((e) => e.id), [3, 2, 1]);
  });
});

describe('feed paging', () => {
  it('appends older pages and, when live events push items out, pages back from the oldest kept', () => {
    let s = applySnapshot(initialState(admin), { activity: { items: Array.from({ length: 50 }, (_, i) => ev(300 - i, 't')), next_before: 251 } });
    assert.equal(s.activity.nextBefore, 251);
    s = { ...s, activity: withOlderPage(s.activity, { items: Array.from({ length: 50 }, (_, i) => ev(250 - i, 't')), next_before: 201 }) };
    assert.equal(s.activity.items.length, 100, 'an older page is kept, past the 50 of the live feed');
    assert.equal(s.activity.nextBefore, 201);
    s = reduceEvent(s, ev(301, 't'));
    assert.equal(s.activity.items.length, 100);
    assert.equal(s.activity.items.at(-1).id, 202);
    assert.equal(s.activity.nextBefore, 202, 'event 201 fell off: the next page starts before 202');
    s = { ...s, activity: withOlderPage(s.activity, { items: [ev(201, 't')], next_before: null }) };
    assert.equal(s.activity.nextBefore, null, 'the start of the history');
    assert.equal(new Set(s.activity.items.map((e) => e.id)).size, s.activity.items.length);
  });
});

describe("an owner's reducers", () => {
  const owner = { id: 'u2', email: 'Dana@Example.com', role: 'business_owner' };
  const NOW = Date.UTC(2026, 5, 1, 9, 0, 0);
  const shop = (id, email = 'dana@example.com') => ({ ...business(id), owner_email: email });
  const res = (id, bid, hoursFromNow, status = 'confirmed') => ({
    id, business_id: bid, status, customer_name: id, created_at: '2026-01-01T00:00:00Z',
    starts_at: new Date(NOW + hoursFromNow * 3_600_000).toISOString(),
  });
  const reduce = (s, e) => reduceOwner(reduceEvent(s, e), e, NOW);
  function ownerState() {
    let s = { ...initialState(owner), ...initialOwnerState() };
    s = applySnapshot(s, { owned: [shop('b'), shop('a')] });
    return applyOwnerSnapshot(s, { owned: s.owned, upcoming: { a: { items: [res('a2', 'a', 5), res('a1', 'a', 1)], count: 2 }, b: { items: [res('b1', 'b', 3)], count: 1 } } });
  }

  it('lists the upcoming appointments of every business soonest first, and counts them per business', () => {
    const s = ownerState();
    assert.deepEqual(s.owned.map((b) => b.id), ['a', 'b'], 'businesses by name');
    assert.deepEqual(s.upcoming.map((r) => r.id), ['a1', 'b1', 'a2']);
    const view = ownerView({ ...s, filterId: 'a' }, NOW);
    assert.deepEqual(view.upcoming.map((r) => r.id), ['a1', 'a2']);
    assert.equal(view.counts.a.upcoming, 2);
    assert.equal(view.counts.b.upcoming, 1);
  });

  it('adds a booking in start order once, leaves out past ones, and drops a cancelled one', () => {
    let s = ownerState();
    const created = ev(20, 'reservation_created', { business_id: 'b', reservation: res('b2', 'b', 2) });
    s = reduce(reduce(s, created), created);
    assert.deepEqual(s.upcoming.map((r) => r.id), ['a1', 'b2', 'b1', 'a2']);
    assert.equal(s.upcomingCount.b, 2, 'counted once');
    s = reduce(s, ev(21, 'reservation_created', { business_id: 'b', reservation: res('past', 'b', -1) }));
    assert.equal(s.upcoming.length, 4, 'a booking in the past is not upcoming');
    const cancelled = ev(22, 'reservation_cancelled', { business_id: 'a', reservation: res('a2', 'a', 5, 'cancelled') });
    s = reduce(reduce(s, cancelled), cancelled);
    assert.deepEqual(s.upcoming.map((r) => r.id), ['a1', 'b2', 'b1']);
    assert.equal(s.upcomingCount.a, 1, 'uncounted once');
    // Time passes: a1 (in 1 h) is no longer upcoming 2 h later.
    assert.deepEqual(ownerView(s, NOW + 2 * 3_600_000).upcoming.map((r) => r.id), ['b2', 'b1']);
  });

  it('takes in a business reassigned to the owner and lets go of one reassigned away', () => {
    let s = { ...ownerState(), filterId: 'a' };
    s = reduce(s, ev(30, 'business_updated', { business: shop('c', 'DANA@example.com') }));
    assert.deepEqual(s.owned.map((b) => b.id), ['a', 'b', 'c'], 'the email compares case-insensitively');
    assert.equal(s.ownerNotice.why, 'added');
    assert.ok(!('c' in s.upcomingCount), 'its appointments are still to be fetched');
    s = applyOwnerSnapshot(s, { upcoming: { c: { items: [res('c1', 'c', 4)], count: 1 } } });
    assert.deepEqual(s.upcoming.map((r) => r.id), ['a1', 'b1', 'c1', 'a2']);
    s = reduce(s, ev(31, 'business_updated', { business: shop('a', 'erin@example.com') }));
    assert.deepEqual(s.owned.map((b) => b.id), ['b', 'c']);
    assert.deepEqual(s.upcoming.map((r) => r.id), ['b1', 'c1'], 'its appointments go with it');
    assert.equal(s.filterId, '', 'the page falls back to all businesses');
    assert.equal(s.ownerNotice.why, 'reassigned');
    // Nothing of it comes back, not even a late booking event.
    s = reduce(s, ev(32, 'reservation_created', { business_id: 'a', reservation: res('a3', 'a', 2) }));
    assert.ok(!s.upcoming.some((r) => r.id === 'a3'));
    s = reduce(s, ev(33, 'business_deleted', { business: shop('b') }));
    assert.deepEqual(s.owned.map((b) => b.id), ['c']);
    assert.equal(s.ownerNotice.why, 'deleted');
  });
});

describe('chart and backoff helpers', () => {
  it('buckets events per minute over the last hour, oldest first', () => {
    const now = Date.UTC(2026, 0, 1, 12, 30, 30);
    const times = [now, now - 10_000, now - 60_000, now - 59 * 60_000, now - 61 * 60_000].map((t) => ({ t }));
    const buckets = perMinute(times, now);
    assert.equal(buckets.length, 60);
    assert.equal(buckets[59], 2);
    assert.equal(buckets[58], 1);
    assert.equal(buckets[0], 1);
    assert.equal(buckets.reduce((a, b) => a + b), 4, 'the event older than an hour is out');
    assert.deepEqual([0, 1, 3, 7, 12, 99].map(niceMax), [1, 1, 5, 10, 20, 100]);
  });

  it('grows the reconnect delay exponentially, jittered, capped at 30 s', () => {
    const lo = (a) => backoffDelay(a, { random: () => 0 });
    const hi = (a) => backoffDelay(a, { random: () => 1 });
    assert.deepEqual([0, 1, 2, 3].map(lo), [250, 500, 1000, 2000]);
    assert.deepEqual([0, 1, 2, 3].map(hi), [500, 1000, 2000, 4000]);
    assert.equal(hi(20), 30_000);
    assert.equal(lo(20), 15_000);
  });
});
