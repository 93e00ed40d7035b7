// Limits the server sets: a session whose renewal is refused while the dashboard is open, and
// the public booking rate limit (429 with Retry-After), as a person sees them.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn } from './support/browser.js';

const TTL_SECONDS = 4;

describe('token expiry and booking rate limit', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer({ APP_TOKEN_TTL: String(TTL_SECONDS), APP_BOOKING_RATE_PER_MINUTE: '1' });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('returns to the login form when the session cannot be renewed, without reconnecting', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      const sockets = [];
      page.on('websocket', (ws) => sockets.push(ws));
      await signIn(page, server.url, ADMIN);
      // Revoked behind the page's back (as a password change elsewhere would): the renewal
      // before expiry is refused.
      const refresh = await page.evaluate(() => localStorage.getItem('app.refresh'));
      await server.api('POST', '/api/auth/logout/', { body: { refresh }, expect: 204 });
      const message = page.locator('#login-message', { hasText: /expired/i });
      await message.waitFor({ timeout: (TTL_SECONDS + 5) * 1000 });
      const opened = sockets.length;
      await page.waitForTimeout(2000);
      assert.equal(sockets.length, opened, 'no reconnect after the refusal');
      assert.equal(await page.evaluate(() => localStorage.getItem('app.token')), null);
      assert.equal(await page.evaluate(() => localStorage.getItem('app.refresh')), null);
      assert.ok(await page.locator('#topbar').isHidden());
    }));

  it('tells a customer who books too often to wait', (t) =>
    session(t, browser, async (tabs) => {
      const b = await server.createBusiness('Busy Shop', unique('busy'), 'owner@example.com');
      const page = await tabs.open();
      await page.goto(`${server.url}/b/${b.subdomain}/`);
      const book = async (name) => {
        await page.getByLabel('Your name').fill(name);
        await page.getByLabel('Your email').fill('busy@example.com');
        await page.getByLabel('Service').fill('Haircut');
        await page.getByRole('button', { name: 'Book' }).click();
      };
      await book('First Customer');
      await page.getByRole('heading', { name: 'You are booked' }).waitFor();
      await page.getByRole('button', { name: 'Book another' }).click();
      await book('Second Customer');
      const error = page.locator('#booking-form .form-error');
      await error.waitFor({ state: 'visible' });
      assert.match(await error.textContent(), /Too many bookings.*try again/i);
    }));
});
