// An owner's whole day in one tab (issue 13): every business they own live over one
// /ws/owner/ socket, the bell counting across all of them, businesses reassigned to or away
// from them appearing and disappearing without a reload, resuming after a server restart,
// and "what is on today?" — upcoming appointments by start time, past and cancelled ones
// out of the way.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, unique, sleep } from './support/server.js';
import { launch, session, signIn, unreadCount, until, waitForStatus } from './support/browser.js';

/** RFC 3339 without milliseconds, `ms` from now. */
const at = (ms) => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const HOUR = 3_600_000;

/** Every WebSocket URL the page opens, by path. */
function socketPaths(page) {
  const paths = [];
  page.on('websocket', (ws) => paths.push(new URL(ws.url()).pathname));
  return paths;
}

describe("an owner's day", () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('shows bookings at all three businesses arriving live in one tab, the bell counting them all, and resumes after a restart', (t) =>
    session(t, browser, async (tabs) => {
      const owner = await server.createOwner(`${unique('three')}@example.com`);
      const names = ['Salon North', 'Salon South', 'Salon West'];
      const shops = [];
      for (const name of names) shops.push(await server.createBusiness(name, unique(name.toLowerCase().replace(' ', '-')), owner.email));
      const page = await tabs.open();
      const sockets = socketPaths(page);
      await signIn(page, server.url, owner);
      const switcher = page.locator('#business-switcher');
      await switcher.locator('button').nth(3).waitFor();
      assert.deepEqual(await switcher.locator('.biz-name').allTextContents(), ['All businesses', ...names]);
      const unread = await unreadCount(page);

      for (const [i, shop] of shops.entries()) await server.book(shop.id, `Live Customer ${i + 1}`);
      for (const [i, name] of names.entries()) {
        const row = page.locator('#reservation-rows tr', { hasText: `Live Customer ${i + 1}` });
        await row.waitFor({ timeout: 2000 });
        assert.equal(await row.locator('.r-business').textContent(), name);
      }
      await until(async () => (await unreadCount(page)) === unread + 3, { message: 'the bell to count the bookings at all three' });
      await switcher.locator('button', { hasText: 'All businesses' }).locator('.biz-counts', { hasText: '3 upcoming' }).waitFor();
      for (const name of names) await switcher.locator('button', { hasText: name }).locator('.biz-counts', { hasText: '1 upcoming' }).waitFor();
      assert.deepEqual(sockets, ['/ws/owner/'], 'one socket for all three businesses');

      // Filter to one business: its bookings only, and new ones elsewhere still reach the bell.
      await switcher.locator('button', { hasText: 'Salon South' }).click();
      await page.locator('#business-name', { hasText: 'Salon South' }).waitFor();
      assert.equal(await switcher.locator('button', { hasText: 'Salon South' }).getAttribute('aria-pressed'), 'true');
      await until(async () => (await page.locator('#reservation-rows tr').count()) === 1, { message: 'one row for Salon South' });
      await server.book(shops[2].id, 'Elsewhere Customer');
      await until(async () => (await unreadCount(page)) === unread + 4, { message: 'the bell to count a booking at another business' });
      await switcher.locator('button', { hasText: 'Salon West' }).locator('.biz-counts', { hasText: '2 upcoming' }).waitFor();
      assert.equal(await page.locator('#reservation-rows tr', { hasText: 'Elsewhere Customer' }).count(), 0);

      // The server restarts: the page reconnects, resumes, and keeps receiving all three.
      await server.restart();
      await waitForStatus(page, 'Live', 20_000);
      await switcher.locator('button', { hasText: 'All businesses' }).click();
      await server.book(shops[0].id, 'After Restart');
      await page.locator('#reservation-rows tr', { hasText: 'After Restart' }).waitFor({ timeout: 3000 });
      await until(async () => (await unreadCount(page)) === unread + 5, { message: 'the bell after the restart' });
      assert.ok(sockets.every((p) => p === '/ws/owner/'), `only the owner channel: ${sockets}`);
    }));

  it('shows a business reassigned to the owner live, and drops one reassigned away', (t) =>
    session(t, browser, async (tabs) => {
      const dana = await server.createOwner(`${unique('dana')}@example.com`);
      const erin = await server.createOwner(`${unique('erin')}@example.com`);
      const own = await server.createBusiness('Dana Nails', unique('dana'), dana.email);
      const other = await server.createBusiness('Erin Spa', unique('erin'), erin.email);
      await server.book(other.id, 'Erin Customer Before');
      const page = await tabs.open();
      await signIn(page, server.url, dana);
      await page.locator('#business-name', { hasText: 'Dana Nails' }).waitFor();
      assert.ok(await page.locator('#business-switcher').isHidden(), 'one business, no switcher');
      const unread = await unreadCount(page);

      const token = await server.adminToken();
      await server.api('PATCH', `/api/businesses/${other.id}/`, { token, body: { owner_email: dana.email } });
      await page.locator('#owner-notice', { hasText: '“Erin Spa” is now yours' }).waitFor({ timeout: 2000 });
      const tab = page.locator('#business-switcher button', { hasText: 'Erin Spa' });
      await tab.waitFor({ timeout: 2000 });
      // Its appointments came with it, and its new bookings arrive live.
      await page.locator('#reservation-rows tr', { hasText: 'Erin Customer Before' }).waitFor({ timeout: 2000 });
      await server.book(other.id, 'Erin Customer After');
      await page.locator('#reservation-rows tr', { hasText: 'Erin Customer After' }).waitFor({ timeout: 2000 });
      await until(async () => (await unreadCount(page)) >= unread + 2, { message: 'the reassignment and the booking in the bell' });

      // Dana's own business goes to Erin: it leaves the page, and so do its bookings.
      await server.book(own.id, 'Dana Customer');
      await page.locator('#reservation-rows tr', { hasText: 'Dana Customer' }).waitFor({ timeout: 2000 });
      await page.locator('#business-switcher button', { hasText: 'Dana Nails' }).click();
      await server.api('PATCH', `/api/businesses/${own.id}/`, { token, body: { owner_email: erin.email } });
      await page.locator('#owner-notice', { hasText: '“Dana Nails” was reassigned to another owner.' }).waitFor({ timeout: 2000 });
      await page.locator('#business-name', { hasText: 'Erin Spa' }).waitFor({ timeout: 2000 });
      assert.ok(await page.locator('#business-switcher').isHidden(), 'one business left');
      assert.equal(await page.locator('#reservation-rows tr', { hasText: 'Dana Customer' }).count(), 0);
      // Nothing of it reaches her any more.
      await server.book(own.id, 'Dana Customer Later SECRET');
      await server.book(other.id, 'Marker Booking');
      await page.locator('#reservation-rows tr', { hasText: 'Marker Booking' }).waitFor({ timeout: 2000 });
      assert.doesNotMatch(await page.locator('body').textContent(), /SECRET/);
      await waitForStatus(page, 'Live');
    }));

  it('answers "what is on today?": upcoming by start time, today at a glance, past and cancelled out of the way', (t) =>
    session(t, browser, async (tabs) => {
      const owner = await server.createOwner(`${unique('today')}@example.com`);
      const shop = await server.createBusiness('Today Salon', unique('today'), owner.email);
      // Booked in an order unlike their start times.
      const inThreeDays = await server.book(shop.id, 'In Three Days', { starts_at: at(72 * HOUR) });
      // The server books only the future: this one starts in 2 s and is past by sign-in.
      await server.book(shop.id, 'Just Passed', { starts_at: at(2000) });
      await server.book(shop.id, 'Tomorrow', { starts_at: at(24 * HOUR) });
      const cancelled = await server.book(shop.id, 'Cancelled Later', { starts_at: at(48 * HOUR) });
      await server.api('POST', `/api/businesses/${shop.id}/reservations/${cancelled.id}/cancel/`, { token: await server.adminToken() });
      await sleep(3000);
      const page = await tabs.open();
      await signIn(page, server.url, owner);
      await page.locator('#reservation-rows tr').nth(1).waitFor();
      // Today's: a few minutes ahead, unless that is already tomorrow here.
      const soon = at(5 * 60_000);
      const todayLeft = new Date(soon).getDate() === new Date().getDate();
      await server.book(shop.id, 'Soon Today', { starts_at: soon });
      await page.locator('#reservation-rows tr', { hasText: 'Soon Today' }).waitFor({ timeout: 2000 });

      const order = await page.locator('#reservation-rows .r-name').allTextContents();
      assert.deepEqual(order, ['Soon Today', 'Tomorrow', 'In Three Days'], 'soonest first; no past, no cancelled');
      if (todayLeft) {
        assert.deepEqual(await page.locator('#today-rows .r-name').allTextContents(), ['Soon Today']);
        await page.locator('#owner-summary', { hasText: '1 appointment today · 3 upcoming' }).waitFor();
      }
      // A cancellation leaves the list live; a booking lands in its place by time.
      await server.api('POST', `/api/businesses/${shop.id}/reservations/${inThreeDays.id}/cancel/`, { token: await server.adminToken() });
      await page.locator('#reservation-rows tr', { hasText: 'In Three Days' }).waitFor({ state: 'detached', timeout: 2000 });
      await server.book(shop.id, 'Day After Tomorrow', { starts_at: at(48 * HOUR) });
      await until(async () => (await page.locator('#reservation-rows .r-name').allTextContents()).join() === 'Soon Today,Tomorrow,Day After Tomorrow', {
        message: 'the new booking between the others',
      });

      // Past and cancelled: behind the disclosure, latest first, with their status.
      assert.ok(await page.locator('#past-table').isHidden());
      await page.locator('#past summary').click();
      await page.locator('#past-rows tr').nth(2).waitFor({ timeout: 2000 });
      const past = await page.locator('#past-rows tr').evaluateAll((rows) => rows.map((r) => `${r.querySelector('.r-name').textContent}: ${r.querySelector('.r-status').textContent}`));
      assert.deepEqual(past, ['In Three Days: Cancelled', 'Cancelled Later: Cancelled', 'Just Passed: Past']);
    }));
});
