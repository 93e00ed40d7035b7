// The page itself: headers (Content-Type, ETag/304, CSP, nosniff), no CSP violation in the
// browser, sign-in by keyboard, expired sessions, a 4401 that stops reconnecting, and the
// layout at phone width.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn, waitForStatus, until } from './support/browser.js';

/** Every file the pages load, and the type it must be served as. */
const FILES = [
  ['/', 'text/html'],
  ['/b/some-shop/', 'text/html'],
  ['/assets/app.css', 'text/css'],
  ['/assets/icon.svg', 'image/svg+xml'],
  ['/assets/app.js', 'text/javascript'],
  ['/assets/connection.js', 'text/javascript'],
  ['/assets/views/admin.js', 'text/javascript'],
  ['/assets/booking.js', 'text/javascript'],
];

describe('the page', () => {
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

  it('serves each file with its type, nosniff, an ETag and 304 on If-None-Match', async () => {
    for (const [path, type] of FILES) {
      const res = await fetch(server.url + path);
      assert.equal(res.status, 200, path);
      assert.ok(res.headers.get('content-type').startsWith(type), `${path}: ${res.headers.get('content-type')}`);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(res.headers.get('cache-control'), 'no-cache', path);
      const etag = res.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]{32}"$/, path);
      await res.arrayBuffer();

      const again = await fetch(server.url + path, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304, path);
      assert.equal(again.headers.get('etag'), etag, path);
      assert.equal((await again.arrayBuffer()).byteLength, 0, path);

      const stale = await fetch(server.url + path, { headers: { 'If-None-Match': '"0000"' } });
      assert.equal(stale.status, 200, path);
      await stale.arrayBuffer();
    }
    const missing = await fetch(`${server.url}/assets/nope.js`);
    assert.equal(missing.status, 404);
  });

  it('sends a same-origin Content-Security-Policy with every page', async () => {
    for (const path of ['/', '/b/some-shop/']) {
      const res = await fetch(server.url + path);
      const csp = res.headers.get('content-security-policy') || '';
      assert.match(csp, /default-src 'self'/, path);
      assert.match(csp, /script-src 'self'(;|$)/, path);
      assert.match(csp, /style-src 'self'(;|$)/, path);
      assert.match(csp, /connect-src 'self'/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, path);
      const html = await res.text();
      assert.doesNotMatch(html, /<script>|<style|style=|https?:\/\//, `${path}: no inline code, no external URL`);
    }
  });

  it('runs with no CSP violation or script error, and signs in by keyboard alone', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await page.addInitScript(() => {
        window.__violations = [];
        document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      const external = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) external.push(r.url());
      });
      await page.goto(`${server.url}/`);
      // Focus starts in the email field; Tab to the password, Enter submits.
      await page.keyboard.type(ADMIN.email);
      await page.keyboard.press('Tab');
      await page.keyboard.type(ADMIN.password);
      await page.keyboard.press('Enter');
      await waitForStatus(page, 'Live');

      // The bell opens and closes by keyboard, and Esc returns focus to it.
      await page.locator('#bell').focus();
      await page.keyboard.press('Enter');
      await page.locator('#bell-panel').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#bell').getAttribute('aria-expanded'), 'true');
      await page.locator('#mark-all-read').focus();
      await page.keyboard.press('Escape');
      await page.locator('#bell-panel').waitFor({ state: 'hidden' });
      assert.equal(await page.evaluate(() => document.activeElement.id), 'bell');

      // Every form control has a label.
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea')]
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
          .map((el) => el.name || el.id));
      assert.deepEqual(unlabelled, []);

      await page.goto(`${server.url}/b/some-shop/`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      assert.deepEqual(await page.evaluate(() => window.__violations), []);
      assert.deepEqual(external, [], 'no request leaves the origin');
      assert.deepEqual(tabs.problems.filter((p) => !/status of 404/.test(p)), []);
    }));

  it('returns to the login form with a message when the token has expired', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await page.goto(`${server.url}/`);
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const past = Math.floor(Date.now() / 1000) - 60;
      const future = Math.floor(Date.now() / 1000) + 3600;
      const claims = { sub: 'x', email: ADMIN.email, role: 'super_admin', iat: past - 3600 };

      // Expired by its own `exp`: caught before any request.
      const expired = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, exp: past })}.c2ln`;
      await page.evaluate((tok) => localStorage.setItem('app.token', tok), expired);
      await page.reload();
      await page.locator('#login-message', { hasText: /expired/i }).waitFor();

      // Not expired by its claims but refused by the server (401): same message.
      const forged = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, exp: future })}.c2ln`;
      await page.evaluate((tok) => localStorage.setItem('app.token', tok), forged);
      await page.reload();
      await page.locator('#login-message', { hasText: /expired/i }).waitFor();
      assert.equal(await page.evaluate(() => localStorage.getItem('app.token')), null);
    }));

  it('renews after a 4401 it can fix, and stops reconnecting after one it cannot', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await signIn(page, server.url, ADMIN);
      const sockets = [];
      page.on('websocket', (ws) => sockets.push(ws));
      // A new signing secret makes every issued access token invalid: the reconnect gets
      // 4401, and the refresh token (still valid) brings a new one: live again, no password.
      await server.restart({ APP_JWT_SECRET: 'another-secret-for-the-4401-test-0123456789abcdef' });
      await until(() => sockets.length >= 2, { timeout: 15_000, message: 'a reconnect, then a fresh socket' });
      await waitForStatus(page, 'Live', 15_000);
      assert.equal(await page.locator('#login-message').count(), 0, 'still signed in');

      // Now the refresh token is revoked too: 4401, a refused renewal, the login form.
      const refresh = await page.evaluate(() => localStorage.getItem('app.refresh'));
      await server.api('POST', '/api/auth/logout/', { body: { refresh }, expect: 204 });
      await server.restart({ APP_JWT_SECRET: 'a-third-secret-for-the-4401-test-0123456789abcdef' });
      await page.locator('#login-message', { hasText: /expired/i }).waitFor({ timeout: 15_000 });
      const attempts = sockets.length;
      await page.waitForTimeout(3000);
      assert.equal(sockets.length, attempts, 'no reconnect loop after 4401');
      // Signing in again (new token, same secret) works.
      await signIn(page, server.url, ADMIN);
    }));

  it('holds its layout at phone width (375px)', (t) =>
    session(t, browser, async (tabs) => {
      const owner = await server.createOwner(`${unique('phone')}@example.com`);
      const b = await server.createBusiness('A Rather Long Business Name For A Small Screen', unique('phone'), owner.email);
      await server.book(b.id, 'Phone Customer With A Long Name');
      const phone = { width: 375, height: 812 };
      const pages = {
        admin: await tabs.open(phone),
        owner: await tabs.open(phone),
        booking: await tabs.open(phone),
      };
      await signIn(pages.admin, server.url, ADMIN);
      await signIn(pages.owner, server.url, owner);
      await pages.owner.locator('#reservation-rows tr').first().waitFor();
      await pages.booking.goto(`${server.url}/b/${b.subdomain}/`);
      await pages.booking.locator('#booking-form').waitFor();
      await pages.admin.locator('#bell').click();
      for (const [name, page] of Object.entries(pages)) {
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 375, `${name}: page is ${width}px wide`);
      }
      const panel = await pages.admin.locator('#bell-panel').boundingBox();
      assert.ok(panel.x >= 0 && panel.x + panel.width <= 375, 'the bell panel fits the screen');
    }));
});
