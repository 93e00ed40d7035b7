// Falling behind the server's retained events: the tab goes Offline, misses more events than
// the server keeps, and on coming back gets `resync_required` and refetches over REST.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn, waitForStatus, until } from './support/browser.js';

describe('resync after falling behind', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer({ APP_EVENT_RETENTION: '5' });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('shows Offline without a network, then refetches what the server no longer retains', (t) =>
    session(t, browser, async (tabs) => {
      const tab = await tabs.open();
      await signIn(tab, server.url, ADMIN);
      const frames = [];
      tab.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
      const requests = [];
      tab.on('request', (r) => requests.push(new URL(r.url()).pathname));

      await tab.context().setOffline(true);
      await waitForStatus(tab, 'Offline', 5000);

      // More events than the server retains (5), while the tab cannot hear them.
      const names = [];
      for (let i = 0; i < 8; i++) {
        const name = unique(`Missed ${i}`);
        names.push(name);
        await server.createBusiness(name, unique(`missed${i}`), 'owner@example.com');
      }
      await tab.context().setOffline(false);
      await waitForStatus(tab, 'Live', 15_000);
      await until(() => frames.some((f) => f.includes('"resync_required"')), { message: 'resync_required frame' });
      await until(() => requests.includes('/api/dashboard/'), { message: 'a REST refetch of the dashboard' });
      for (const name of names.slice(-8)) {
        await tab.locator('#business-rows tr', { hasText: name }).waitFor({ timeout: 2000 });
      }
      assert.equal(Number(await tab.locator('#stat-businesses').textContent()), 8);
      await tab.locator('#activity li', { hasText: names[7] }).waitFor();
    }));
});
