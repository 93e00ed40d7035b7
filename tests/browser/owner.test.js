// A business owner's view and the public booking page: bookings arrive live, cancellation
// (the booking leaves "Upcoming" for "Past and cancelled"), and no business of another owner
// ever shows. (Several businesses, reassignment and the today view: owner-day.test.js.)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, unique } from './support/server.js';
import { launch, session, signIn, until } from './support/browser.js';

describe('owner view and public booking page', () => {
  let server;
  let browser;
  let alice;
  let bob;
  let aliceShop;
  let bobShop;
  before(async () => {
    server = await startServer();
    browser = await launch();
    alice = await server.createOwner('alice@example.com');
    bob = await server.createOwner('bob@example.com');
    aliceShop = await server.createBusiness("Alice's Cuts", unique('alice'), alice.email);
    bobShop = await server.createBusiness('Bob Barbers SECRET', unique('bob'), bob.email);
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it("shows a booking made on the public page live in the owner's tab", (t) =>
    session(t, browser, async (tabs) => {
      const owner = await tabs.open();
      await signIn(owner, server.url, alice);
      await owner.locator('#business-name', { hasText: "Alice's Cuts" }).waitFor();

      const customer = await tabs.open({ width: 375, height: 740 });
      await customer.goto(`${server.url}/b/${aliceShop.subdomain}/`);
      await customer.getByRole('heading', { name: "Alice's Cuts" }).waitFor();
      await customer.getByLabel('Your name').fill('Carol <i>Customer</i>');
      await customer.getByLabel('Your email').fill('carol@example.com');
      await customer.getByLabel('Date and time').fill('2030-05-17T14:30');
      await customer.getByLabel('Service').fill('Haircut');
      await customer.getByRole('button', { name: 'Book' }).click();
      const confirmation = customer.locator('#confirmation');
      await confirmation.getByRole('heading', { name: 'You are booked' }).waitFor();
      assert.match(await confirmation.textContent(), /Carol <i>Customer<\/i>/);

      const row = owner.locator('#reservation-rows tr', { hasText: 'Carol <i>Customer</i>' });
      await row.waitFor({ timeout: 1000 });
      assert.match(await row.textContent(), /Haircut/);
      assert.equal(await owner.locator('#reservation-rows i').count(), 0, 'markup stays text');
      await owner.locator('#activity li[data-type="reservation_created"]').first().waitFor({ timeout: 1000 });
    }));

  it('lets the owner cancel a reservation', (t) =>
    session(t, browser, async (tabs) => {
      await server.book(aliceShop.id, 'Dave ToCancel');
      const owner = await tabs.open();
      await signIn(owner, server.url, alice);
      const row = owner.locator('#reservation-rows tr', { hasText: 'Dave ToCancel' });
      await row.getByRole('button', { name: 'Cancel the reservation of Dave ToCancel' }).click();
      await owner.locator('dialog').getByRole('button', { name: 'Cancel reservation' }).click();
      await row.waitFor({ state: 'detached', timeout: 2000 });
      // Out of the way, not gone: under "Past and cancelled", without a cancel button.
      await owner.locator('#past summary').click();
      const past = owner.locator('#past-rows tr', { hasText: 'Dave ToCancel' });
      await past.locator('.r-status', { hasText: 'Cancelled' }).waitFor({ timeout: 2000 });
      assert.equal(await past.getByRole('button').count(), 0, 'no cancel button on a cancelled reservation');
      await owner.locator('#activity li[data-type="reservation_cancelled"]').first().waitFor({ timeout: 2000 });
    }));

  it('never shows the owner another business', (t) =>
    session(t, browser, async (tabs) => {
      const owner = await tabs.open();
      await signIn(owner, server.url, alice);
      await owner.locator('#business-name', { hasText: "Alice's Cuts" }).waitFor();
      // Activity at Bob's, while Alice watches, and a reservation at hers as a marker.
      await server.book(bobShop.id, 'Bob Customer SECRET');
      await server.api('PATCH', `/api/businesses/${bobShop.id}/`, {
        token: await server.adminToken(),
        body: { name: 'Bob Barbers SECRET renamed' },
      });
      await server.book(aliceShop.id, 'Marker After Bob');
      await owner.locator('#reservation-rows tr', { hasText: 'Marker After Bob' }).waitFor({ timeout: 2000 });

      const text = await owner.locator('body').textContent();
      assert.doesNotMatch(text, /SECRET/, 'nothing of Bob’s business on Alice’s page');
      assert.ok(await owner.locator('#business-switcher').isHidden(), 'one business, no switcher');
      await owner.locator('#bell').click();
      assert.doesNotMatch(await owner.locator('#bell-panel').textContent(), /SECRET/);

      // Her token cannot open Bob's channel, nor the dashboard's: both closed with 4403.
      const codes = await owner.evaluate(async ({ bobId }) => {
        const token = localStorage.getItem('app.token');
        const closeCode = (path) => new Promise((resolve) => {
          const ws = new WebSocket(`ws://${location.host}${path}?token=${token}`);
          ws.onclose = (e) => resolve(e.code);
        });
        return Promise.all([closeCode(`/ws/business/${bobId}/`), closeCode('/ws/dashboard/')]);
      }, { bobId: bobShop.id });
      assert.deepEqual(codes, [4403, 4403]);
      // And the REST API lists only her business.
      const token = await owner.evaluate(() => localStorage.getItem('app.token'));
      const mine = await server.api('GET', '/api/businesses/', { token });
      assert.deepEqual(mine.items.map((b) => b.id), [aliceShop.id]);
    }));

  it('switches between two businesses and follows a rename and a deletion live', (t) =>
    session(t, browser, async (tabs) => {
      const carol = await server.createOwner('carol@example.com');
      const first = await server.createBusiness('Carol One', unique('carol1'), carol.email);
      const second = await server.createBusiness('Carol Two', unique('carol2'), carol.email);
      await server.book(first.id, 'Booked At One');
      await server.book(second.id, 'Booked At Two');
      const owner = await tabs.open();
      await signIn(owner, server.url, carol);
      await owner.locator('#business-switcher').waitFor({ state: 'visible' });
      await owner.locator('#reservation-rows tr', { hasText: 'Booked At Two' }).waitFor();

      await owner.locator('#business-switcher button', { hasText: 'Carol One' }).click();
      await owner.locator('#business-name', { hasText: 'Carol One' }).waitFor();
      await owner.locator('#reservation-rows tr', { hasText: 'Booked At One' }).waitFor();
      assert.equal(await owner.locator('#reservation-rows tr', { hasText: 'Booked At Two' }).count(), 0);
      await owner.locator('#conn-status', { hasText: 'Live' }).waitFor();

      const token = await server.adminToken();
      await server.api('PATCH', `/api/businesses/${first.id}/`, { token, body: { name: 'Carol One Renamed' } });
      await owner.locator('#business-name', { hasText: 'Carol One Renamed' }).waitFor({ timeout: 1000 });
      await server.api('DELETE', `/api/businesses/${first.id}/`, { token, expect: 204 });
      await owner.locator('#owner-notice', { hasText: '“Carol One Renamed” has been deleted.' }).waitFor({ timeout: 2000 });
      // The page falls back to what is left: the other business, alone, so no switcher.
      await owner.locator('#business-name', { hasText: 'Carol Two' }).waitFor({ timeout: 2000 });
      assert.ok(await owner.locator('#business-switcher').isHidden());
      await owner.locator('#reservation-rows tr', { hasText: 'Booked At Two' }).waitFor();
    }));

  it("shows the booking form's validation errors at the field, and 404 for an unknown page", (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await page.goto(`${server.url}/b/${aliceShop.subdomain}/`);
      await page.getByLabel('Your name').fill('Eve');
      await page.getByLabel('Your email').fill('not an email');
      await page.getByLabel('Service').fill('Colour');
      await page.getByRole('button', { name: 'Book' }).click();
      const error = page.locator('[data-field="customer_email"] .field-error');
      await error.waitFor({ state: 'visible' });
      assert.equal(await page.getByLabel('Your email').getAttribute('aria-invalid'), 'true');
      assert.equal(await page.locator(':focus').getAttribute('name'), 'customer_email', 'focus moves to the field');

      await page.goto(`${server.url}/b/no-such-business-here/`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      // Without the trailing slash: redirected to the page.
      await page.goto(`${server.url}/b/${aliceShop.subdomain}`);
      await until(() => page.url().endsWith(`/b/${aliceShop.subdomain}/`), { message: 'redirect to the slash' });
      await page.getByRole('heading', { name: "Alice's Cuts" }).waitFor();
    }));
});
