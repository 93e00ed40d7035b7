// The activity feed's history (issue 13): "Load older" pages back through the retained log
// with the REST pagination (`before` / `next_before`), for a super admin and for an owner,
// with the type filter applying to every page, no event shown twice or skipped (even when a
// live one arrives between pages), and a clear end of the history.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn, until } from './support/browser.js';

const BOOKINGS = 200;
/** Every tenth booking is cancelled, so cancellations are spread through the history. */
const CANCEL_EVERY = 10;

/** The ids a caller's activity holds, newest first, paged over REST as a reference. */
async function allIds(server, token, type) {
  const ids = [];
  let before = null;
  for (;;) {
    const query = new URLSearchParams({ limit: '200' });
    if (type) query.set('type', type);
    if (before) query.set('before', String(before));
    const page = await server.api('GET', `/api/activity/?${query}`, { token });
    ids.push(...page.items.map((e) => e.id));
    if (page.next_before === null) return ids;
    before = page.next_before;
  }
}

/** The ids shown in the feed, top to bottom. */
const shownIds = (page) => page.locator('#activity li').evaluateAll((els) => els.map((e) => Number(e.dataset.key)));

/** Clicks "Load older" until the end of the history shows; returns how many clicks. */
async function loadAll(page) {
  let clicks = 0;
  const older = page.locator('#load-older');
  while (await page.locator('#feed-end').isHidden()) {
    const before = (await shownIds(page)).length;
    await older.click();
    clicks += 1;
    await until(async () => (await shownIds(page)).length > before || (await page.locator('#feed-end').isVisible()), {
      message: `page ${clicks} of older events`,
    });
    assert.ok(clicks < 20, 'the end of the history comes');
  }
  return clicks;
}

describe('activity history: load older', () => {
  let server;
  let browser;
  let owner;
  let shop;
  before(async () => {
    server = await startServer({ APP_BOOKING_RATE_PER_MINUTE: '100000', APP_BOOKING_RATE_PER_BUSINESS_PER_MINUTE: '100000' });
    browser = await launch();
    owner = await server.createOwner(`${unique('history')}@example.com`);
    shop = await server.createBusiness('History Salon', unique('history'), owner.email);
    const token = await server.adminToken();
    for (let i = 1; i <= BOOKINGS; i++) {
      const r = await server.book(shop.id, `History Customer ${i}`);
      if (i % CANCEL_EVERY === 0) await server.api('POST', `/api/businesses/${shop.id}/reservations/${r.id}/cancel/`, { token });
    }
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('pages a super admin back through 200+ events to the start, without gaps or repeats', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await signIn(page, server.url, ADMIN);
      await page.locator('#activity li').nth(49).waitFor();
      assert.equal((await shownIds(page)).length, 50, 'the last 50 first');
      assert.ok(await page.locator('#feed-end').isHidden());

      // One page back, then a live event arrives, then the rest.
      await page.locator('#load-older').click();
      await until(async () => (await shownIds(page)).length === 100, { message: 'a second page of 50' });
      await server.book(shop.id, 'Live Between Pages');
      await page.locator('#activity li', { hasText: 'Live Between Pages' }).waitFor({ timeout: 2000 });
      await loadAll(page);

      const expected = await allIds(server, await server.adminToken());
      assert.ok(expected.length > BOOKINGS + BOOKINGS / CANCEL_EVERY, `${expected.length} events retained`);
      assert.deepEqual(await shownIds(page), expected, 'every retained event once, newest first');
      assert.match(await page.locator('#feed-end').textContent(), /Start of the history/);
      assert.ok(await page.locator('#load-older').isHidden(), 'nothing older to load');
    }));

  it('keeps the type filter on every older page, for an owner too', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await signIn(page, server.url, owner);
      await page.locator('#activity li').nth(49).waitFor();
      await page.getByLabel('Show').selectOption('reservation_cancelled');
      await until(async () => {
        const types = await page.locator('#activity li').evaluateAll((els) => els.map((e) => e.dataset.type));
        return types.length > 0 && types.every((x) => x === 'reservation_cancelled');
      }, { message: 'only cancellations in the feed' });
      // Among the last 50 events there are only a few cancellations; the rest are older.
      assert.ok((await shownIds(page)).length < BOOKINGS / CANCEL_EVERY);
      const clicks = await loadAll(page);
      assert.ok(clicks >= 1);
      const token = await server.login(owner.email, owner.password);
      const expected = await allIds(server, token, 'reservation_cancelled');
      assert.equal(expected.length, BOOKINGS / CANCEL_EVERY);
      assert.deepEqual(await shownIds(page), expected);
      const types = await page.locator('#activity li').evaluateAll((els) => els.map((e) => e.dataset.type));
      assert.ok(types.every((x) => x === 'reservation_cancelled'), types.join());
      assert.match(await page.locator('#feed-end').textContent(), /no older reservation cancelled events/);

      // Back to all events: the last 50 again, and the whole history for an owner as well.
      await page.getByLabel('Show').selectOption('');
      await until(async () => (await shownIds(page)).length === 50, { message: 'the last 50 of all types' });
      await loadAll(page);
      assert.deepEqual(await shownIds(page), await allIds(server, token));
    }));

  it('claims neither older pages nor the start of the history when a filter\'s page fails to load', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await signIn(page, server.url, ADMIN);
      await page.locator('#activity li').nth(49).waitFor();
      // The filter's first page fails for real: the request never reaches the server.
      const cancellations = (url) => url.pathname === '/api/activity/' && url.searchParams.get('type') === 'reservation_cancelled';
      await page.route(cancellations, (route) => route.abort('connectionrefused'));
      await page.getByLabel('Show').selectOption('reservation_cancelled');
      await page.locator('#toasts [role="alert"]', { hasText: 'could not be reached' }).waitFor();
      const types = await page.locator('#activity li').evaluateAll((els) => els.map((e) => e.dataset.type));
      assert.ok(types.length > 0 && types.every((x) => x === 'reservation_cancelled'), `the loaded cancellations stay: ${types.join()}`);
      assert.ok(await page.locator('#feed-end').isHidden(), 'no claim that the history starts here');
      assert.ok(await page.locator('#load-older').isHidden(), 'no page to go back from');

      // Once the server answers again, choosing the filter again loads it as usual.
      await page.unroute(cancellations);
      await page.getByLabel('Show').selectOption('');
      await until(async () => (await shownIds(page)).length === 50, { message: 'the last 50 of all types' });
      await page.getByLabel('Show').selectOption('reservation_cancelled');
      await until(async () => await page.locator('#load-older').isVisible(), { message: 'older cancellations offered' });
      await loadAll(page);
      assert.deepEqual(await shownIds(page), await allIds(server, await server.adminToken(), 'reservation_cancelled'));
      assert.match(await page.locator('#feed-end').textContent(), /no older reservation cancelled events/);
    }));
});
