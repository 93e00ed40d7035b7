// The original system's browser client, unchanged, against `app serve --addr 0.0.0.0:PORT`.
//
// The page below is served from another origin (as the seed's React dev server was), lists
// that origin in APP_ALLOWED_ORIGINS, and runs the seed documentation's own code:
// `new WebSocket('ws://localhost:PORT/ws/dashboard/?token=JWT')`, then reads `type`,
// `payload` and `timestamp` of each message. Nothing in it knows about event ids or epochs.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { startServer, unique } from './support/server.js';
import { launch, session, until } from './support/browser.js';

/** The seed's client: connect with the token in the URL, keep what each message says. */
const SEED_PAGE = `<!doctype html>
<meta charset="utf-8"><title>seed client</title>
<p id="status">Offline</p>
<script>
  window.received = [];
  const params = new URLSearchParams(location.search);
  const ws = new WebSocket('ws://localhost:' + params.get('port') + '/ws/dashboard/?token=' + params.get('token'));
  ws.onopen = () => { document.getElementById('status').textContent = 'Live'; };
  ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    window.received.push({ type: data.type, payload: data.payload, timestamp: data.timestamp });
  };
  ws.onclose = () => { document.getElementById('status').textContent = 'Offline'; };
</script>`;

describe('a client written for the original system', () => {
  let pages;
  let pagesOrigin;
  let server;
  let browser;
  before(async () => {
    pages = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(SEED_PAGE);
    });
    pages.listen(0, '127.0.0.1');
    await once(pages, 'listening');
    pagesOrigin = `http://localhost:${pages.address().port}`;
    server = await startServer({ APP_ALLOWED_ORIGINS: pagesOrigin }, { addr: '0.0.0.0:0' });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
    pages?.close();
  });

  it('receives business_created with type, payload and timestamp, unchanged', (t) =>
    session(t, browser, async (tabs) => {
      const port = new URL(server.url).port;
      const token = await server.adminToken();
      const tab = await tabs.open();
      await tab.goto(`${pagesOrigin}/?port=${port}&token=${encodeURIComponent(token)}`);
      await tab.locator('#status', { hasText: 'Live' }).waitFor({ timeout: 5000 });
      // The first frame says the connection is up (the seed's client ignores what it does not know).
      await until(() => tab.evaluate(() => window.received.length >= 1), { message: 'the first frame' });

      const name = `New Salon ${unique('seed')}`;
      await server.createBusiness(name, unique('newsalon'), 'owner@example.com');
      const frame = await until(
        () => tab.evaluate(() => window.received.find((m) => m.type === 'business_created')),
        { timeout: 2000, message: 'the business_created frame' },
      );
      assert.equal(frame.payload.business.name, name);
      assert.equal(frame.payload.message, `New business '${name}' created`);
      assert.match(frame.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      assert.equal(await tab.locator('#status').textContent(), 'Live');
    }));
});
