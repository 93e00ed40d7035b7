// Limits the server sets: a token that expires while the dashboard is open, and the public
// booking rate limit (429 with Retry-After), as a person sees them.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn, until } from './support/browser.js';

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

  it('returns to the login form when the token expires, without reconnecting', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      const sockets = [];
      page.on('websocket', (ws) => sockets.push(ws));
      await signIn(page, server.url, ADMIN);
      const message = page.locator('#login-message', { hasText: /expired/i });
      await message.waitFor({ timeout: (TTL_SECONDS + 5) * 1000 });
      const opened = sockets.length;
      await page.waitForTimeout(2000);
      assert.equal(sockets.length, opened, 'no reconnect after expiry');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('app.token')), null);
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

describe('staying signed in', () => {
  const TTL = 16; // the offer shows a quarter of the lifetime before expiry: after 12 s
  let server;
  let browser;
  before(async () => {
    server = await startServer({ APP_TOKEN_TTL: String(TTL) });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('renews the token before expiry and keeps the same live connection', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      const sockets = [];
      const expiries = []; // from connection_established, then from auth_ok
      page.on('websocket', (ws) => {
        sockets.push(ws);
        ws.on('framereceived', (f) => {
          const frame = JSON.parse(String(f.payload));
          if (frame.type === 'connection_established' || frame.type === 'auth_ok') expiries.push(Date.parse(frame.payload.expires_at));
        });
      });
      await signIn(page, server.url, ADMIN);
      await until(() => expiries.length === 1, { message: 'connection_established' });
      const firstExpiry = expiries[0];
      const renew = page.locator('#renew-form');
      assert.equal(await renew.count(), 0, 'no offer right after signing in');
      await renew.waitFor({ timeout: TTL * 1000 });

      await renew.getByLabel('Password').fill('wrong-password');
      await renew.getByRole('button', { name: 'Stay signed in' }).click();
      await renew.locator('.form-error').waitFor({ state: 'visible' });
      assert.ok(await page.locator('#conn-status', { hasText: 'Live' }).isVisible(), 'a wrong password changes nothing');
      await renew.getByLabel('Password').fill(ADMIN.password);
      await renew.getByRole('button', { name: 'Stay signed in' }).click();
      await renew.waitFor({ state: 'detached' });
      await until(() => expiries.length === 2, { message: 'auth_ok from the server' });
      assert.ok(expiries[1] >= firstExpiry + 5000, 'the new token lasts longer');

      // Past the first token's expiry: still signed in, on the same socket, live.
      await page.waitForTimeout(Math.max(0, firstExpiry + 1500 - Date.now()));
      assert.ok(Date.now() < expiries[1] - 2000, 'checked well before the new token expires');
      assert.equal(await page.locator('#login-message').count(), 0, 'not sent back to the login form');
      assert.equal(sockets.length, 1, 'the connection was kept, not reopened');
      assert.equal(await page.locator('#conn-status').textContent(), 'Live');
      const name = unique('After renewal');
      await server.createBusiness(name, unique('renewed'), 'owner@example.com');
      await page.locator('#business-rows tr', { hasText: name }).waitFor({ timeout: 1000 });
    }));
});
