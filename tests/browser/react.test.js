// The React hook module the binary serves (/assets/react/websocket.js, docs/react-hook.md),
// driven in Chromium with React 18 from npm against a real `app serve`: it receives events,
// resumes with no gap after the server restarts and after the socket is dropped, handles
// `resync_required` when it fell further behind than the server retains, and switches to a
// new token over the open socket (`auth`).
//
// The test page (react/index.html, react/app.js) is served on the server's own origin through
// Playwright's request routing, so the WebSocket passes the server's Origin check as a page of
// the app would; React and ReactDOM are the UMD builds from node_modules.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, unique, sleep, ADMIN } from './support/server.js';
import { launch, session, until } from './support/browser.js';

const here = dirname(fileURLToPath(import.meta.url));
const FILES = {
  '/react-test/': ['text/html', join(here, 'react', 'index.html')],
  '/react-test/app.js': ['text/javascript', join(here, 'react', 'app.js')],
  '/react-test/react.js': ['text/javascript', join(here, 'node_modules', 'react', 'umd', 'react.development.js')],
  '/react-test/react-dom.js': ['text/javascript', join(here, 'node_modules', 'react-dom', 'umd', 'react-dom.development.js')],
};

/** Opens the test page with `token`; returns a reader of its log. */
async function openApp(tabs, server, token) {
  const page = await tabs.open();
  await page.route(`${server.url}/react-test/**`, (route) => {
    const entry = FILES[new URL(route.request().url()).pathname];
    if (!entry) return route.fulfill({ status: 404, body: '' });
    return route.fulfill({ status: 200, contentType: entry[0], body: readFileSync(entry[1]) });
  });
  await page.goto(`${server.url}/react-test/?token=${encodeURIComponent(token)}`);
  await page.locator('#status', { hasText: 'live' }).waitFor();
  return { page, log: () => page.evaluate(() => window.log) };
}

/** Asserts `ids` are consecutive integers (no gap, no duplicate). */
function assertConsecutive(ids, what) {
  for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, `${what}: ${ids}`);
}

describe('the served React hook (useWebSocket, WebSocketProvider)', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer({ APP_EVENT_RETENTION: '5' });
    // A page fulfilled by Playwright has no IP address, so Chromium counts it as public and
    // its Local Network Access checks would block its socket to 127.0.0.1; a real page of
    // the app is served by the app from the same (local) address.
    browser = await launch({ args: ['--disable-features=LocalNetworkAccessChecks'] });
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  const create = async (n, label) => {
    const names = [];
    for (let i = 0; i < n; i++) {
      const name = unique(`${label} ${i}`);
      names.push(name);
      await server.createBusiness(name, unique(`${label}${i}`.toLowerCase()), 'someone@example.com');
    }
    return names;
  };

  it('receives events, and resumes with no gap after a server restart and after the socket drops', (t) =>
    session(t, browser, async (tabs) => {
      const { page, log } = await openApp(tabs, server, await server.adminToken());
      assert.deepEqual((await log()).resyncs.map((r) => r.reason), ['initial']);
      const live = await create(2, 'Live');
      for (const name of live) await page.locator('#events li', { hasText: name }).waitFor();

      // The server restarts; what is created as soon as it is back arrives exactly once.
      await server.stop();
      await page.locator('#status', { hasText: 'reconnecting' }).waitFor();
      for (let i = 0; ; i++) {
        try {
          await server.start(); // same port and data folder
          break;
        } catch (err) {
          if (i >= 20) throw err;
          await sleep(250);
        }
      }
      const afterRestart = await create(2, 'Restart');
      for (const name of afterRestart) await page.locator('#events li', { hasText: name }).waitFor({ timeout: 15_000 });

      // The socket drops (the browser goes offline); what happens meanwhile is replayed.
      await page.context().setOffline(true);
      await page.locator('#status', { hasText: 'offline' }).waitFor();
      const missed = await create(3, 'Missed');
      await page.context().setOffline(false);
      for (const name of missed) await page.locator('#events li', { hasText: name }).waitFor({ timeout: 15_000 });

      const { events, resyncs } = await log();
      assert.equal(events.length, 7);
      assertConsecutive(events, 'event ids');
      assert.deepEqual(resyncs.map((r) => r.reason), ['initial'], 'resumed, never resynced');
      assert.equal(await page.locator('#events li').count(), 7);
    }));

  it('handles resync_required after missing more events than the server retains', (t) =>
    session(t, browser, async (tabs) => {
      const { page, log } = await openApp(tabs, server, await server.adminToken());
      await page.context().setOffline(true);
      await page.locator('#status', { hasText: 'offline' }).waitFor();
      await create(8, 'Lost'); // the server keeps 5 (APP_EVENT_RETENTION)
      await page.context().setOffline(false);
      await until(async () => (await log()).resyncs.length === 2, { timeout: 15_000, message: 'a second onResync' });
      const { resyncs, events } = await log();
      assert.equal(resyncs[1].reason, 'resync_required');
      assert.deepEqual(events, [], 'no partial replay');
      assert.equal(await page.locator('#resyncs').textContent(), '2');
      // Live again from the newest id.
      const [next] = await create(1, 'After');
      await page.locator('#events li', { hasText: next }).waitFor();
      assert.deepEqual((await log()).events, [resyncs[1].lastEventId + 1]);
    }));

  it('switches the open socket to a new token with `auth`, without reconnecting', (t) =>
    session(t, browser, async (tabs) => {
      const { page, log } = await openApp(tabs, server, await server.adminToken());
      const sockets = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      await sleep(1100); // a token issued in the same second as the first would be the same
      const fresh = await server.login(ADMIN.email, ADMIN.password);
      await page.evaluate((token) => window.setToken(token), fresh);
      await until(async () => (await log()).messages.includes('auth_ok'), { message: 'auth_ok' });
      const [name] = await create(1, 'Renewed');
      await page.locator('#events li', { hasText: name }).waitFor();
      assert.deepEqual(sockets, [], 'no new socket');
      assert.equal(await page.locator('#status').textContent(), 'live');
    }));
});
