// Staying signed in (API.md "Sessions that last, and can be ended"): with access tokens that
// live 20 s, a window with two tabs of the same session stays live for 90 s with no reload and
// no password — the page renews with the refresh token, one tab at a time, and switches its
// open socket to each new token with an `auth` frame — and signing out revokes the refresh token.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn, waitForStatus } from './support/browser.js';

const TTL = 20;
const LIVE_FOR_MS = 90_000;

/** Records what a tab's sockets and renewals do; `log` tells the story when a check fails. */
function watchTab(page, name, log) {
  const seen = { sockets: 0, authOk: 0, refreshes: [] };
  const at = () => `${((Date.now() - log.start) / 1000).toFixed(1)}s ${name}`;
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/api/auth/refresh/') log.push(`${at()} refresh ${JSON.parse(req.postData()).refresh.slice(0, 8)}`);
  });
  page.on('requestfailed', (req) => log.push(`${at()} failed ${new URL(req.url()).pathname} ${req.failure()?.errorText}`));
  page.on('websocket', (ws) => {
    seen.sockets += 1;
    ws.on('framereceived', (f) => {
      if (JSON.parse(String(f.payload)).type === 'auth_ok') seen.authOk += 1;
    });
  });
  page.on('response', (res) => {
    const path = new URL(res.url()).pathname;
    if (path === '/api/auth/refresh/') seen.refreshes.push(res.status());
    if (path.startsWith('/api/')) log.push(`${at()} ${res.status()} ${path}`);
  });
  page.on('websocket', (ws) => {
    log.push(`${at()} socket opened`);
    ws.on('close', () => log.push(`${at()} socket closed`));
  });
  return seen;
}

describe('staying signed in', () => {
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

  it('keeps two tabs of one session live for 90 s on 20 s tokens, never closing with 4401', { timeout: 150_000 }, (t) =>
    session(t, browser, async (tabs) => {
      const log = Object.assign([], { start: Date.now() });
      try {
        const first = await tabs.open();
        const one = watchTab(first, 'tab1', log);
        const start = Date.now();
        await signIn(first, server.url, ADMIN);
        // The second tab of the same window shares the session: no password.
        const second = await tabs.open(undefined, { sameWindowAs: first });
        const two = watchTab(second, 'tab2', log);
        await second.goto(`${server.url}/`);
        await waitForStatus(second, 'Live');

        await second.waitForTimeout(Math.max(0, start + LIVE_FOR_MS - 5000 - Date.now()));
        const name = unique('Near the end');
        await server.createBusiness(name, unique('late'), 'owner@example.com');
        for (const page of [first, second]) {
          await page.locator('#business-rows tr', { hasText: name }).waitFor({ timeout: 2000 });
        }
        await second.waitForTimeout(Math.max(0, start + LIVE_FOR_MS - Date.now()));

        for (const [label, page, seen] of [['first', first, one], ['second', second, two]]) {
          assert.equal(await page.locator('#conn-status').textContent(), 'Live', `${label} tab is live`);
          assert.equal(await page.locator('#login-message').count(), 0, `${label} tab still signed in`);
          // One socket for the whole 90 s: it never closed (a 4401 would have reopened it after
          // a renewal, or ended on the login form).
          assert.equal(seen.sockets, 1, `${label} tab kept its socket`);
          // 90 s on 20 s tokens renewed at 80 %: at least four new tokens reached each socket.
          assert.ok(seen.authOk >= 4, `${label} tab's socket switched token ${seen.authOk} times`);
        }
        const refreshes = [...one.refreshes, ...two.refreshes];
        assert.ok(refreshes.every((s) => s === 200), `every refresh succeeded: ${refreshes}`);
        // One renewal per token for the window, not one per tab (and no reuse revoking the family).
        assert.ok(refreshes.length >= 4 && refreshes.length <= 7, `${refreshes.length} refreshes for two tabs`);
      } catch (err) {
        // What each tab did, in order, and what the server said: the story of a failure.
        err.message += `\n--- requests and sockets ---\n${log.join('\n')}\n--- server ---\n${server.log.join('').slice(-4000)}`;
        throw err;
      }
    }));

  it('signing out revokes the refresh token and signs out the other tab too', (t) =>
    session(t, browser, async (tabs) => {
      const first = await tabs.open();
      await signIn(first, server.url, ADMIN);
      const second = await tabs.open(undefined, { sameWindowAs: first });
      await second.goto(`${server.url}/`);
      await waitForStatus(second, 'Live');
      const refresh = await first.evaluate(() => localStorage.getItem('app.refresh'));
      assert.ok(refresh, 'the page keeps a refresh token');

      await first.getByRole('button', { name: 'Sign out' }).click();
      for (const page of [first, second]) await page.getByRole('button', { name: 'Sign in' }).waitFor();
      assert.equal(await first.evaluate(() => localStorage.getItem('app.refresh')), null);
      await server.api('POST', '/api/auth/refresh/', { body: { refresh }, expect: 401 });
    }));
});
