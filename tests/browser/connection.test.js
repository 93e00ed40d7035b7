// The connection module (connection.js) in the browser against a scripted WebSocket:
// backoff with jitter, resume parameters, resync, and the closes it never retries.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.js';
import { launch } from './support/browser.js';

describe('connection module', () => {
  let server;
  let browser;
  let page;
  before(async () => {
    server = await startServer();
    browser = await launch();
    page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/b/any-shop/`); // any page of ours: same origin for the import
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  /**
   * Runs a Connection with a fake WebSocket in the page. `script` is a list of steps, one per
   * socket the Connection opens: frames the server sends, then the close code.
   * Returns the URLs it opened, the statuses, resyncs, events and stops it reported.
   */
  function run(script, { waitMs = 2500 } = {}) {
    return page.evaluate(async ({ script, waitMs }) => {
      const { Connection } = await import('/assets/connection.js');
      const log = { urls: [], statuses: [], resyncs: [], events: [], stops: [], delays: [] };
      let n = 0;
      let lastOpen = 0;
      class FakeSocket {
        constructor(url) {
          const step = script[n] || null;
          n += 1;
          const now = performance.now();
          if (log.urls.length) log.delays.push(Math.round(now - lastOpen));
          lastOpen = now;
          log.urls.push(url);
          this.readyState = 0;
          setTimeout(() => {
            if (!step) return; // stays open, silent
            this.readyState = 1;
            for (const f of step.frames || []) this.onmessage?.({ data: JSON.stringify(f) });
            if (step.close) {
              this.readyState = 3;
              this.onclose?.({ code: step.close });
            }
          }, 10);
        }
        send() {}
        close() {
          this.readyState = 3;
        }
      }
      const conn = new Connection({
        path: '/ws/dashboard/',
        getToken: () => 'TOKEN',
        WebSocketImpl: FakeSocket,
        onStatus: (s) => log.statuses.push(s),
        onResync: (why, p) => log.resyncs.push([why, p.last_event_id]),
        onEvent: (e) => log.events.push(e.id),
        onStop: (reason, code) => log.stops.push([reason, code]),
      });
      conn.start();
      await new Promise((r) => setTimeout(r, waitMs));
      conn.stop();
      return log;
    }, { script, waitMs });
  }

  const established = (lastId, epoch = 'E1') => ({
    type: 'connection_established',
    payload: { channel: 'dashboard', user: {}, last_event_id: lastId, epoch, expires_at: '2099-01-01T00:00:00Z' },
  });
  const event = (id) => ({ id, type: 'business_created', payload: { message: 'x' }, timestamp: '2026-01-01T00:00:00Z' });

  for (const [code, reason] of [[4401, 'unauthenticated'], [4403, 'forbidden'], [1003, 'protocol'], [1009, 'protocol']]) {
    it(`does not reconnect after ${code}`, async () => {
      const log = await run([{ frames: [established(3)], close: code }], { waitMs: 1500 });
      assert.equal(log.urls.length, 1, log.urls.join());
      assert.deepEqual(log.stops, [[reason, code]]);
      assert.equal(log.statuses.at(-1), 'offline');
    });
  }

  it('reconnects after 1001, 1006 and 4008, resuming from the last event with the epoch', async () => {
    const log = await run([
      { frames: [established(5), event(6), event(7)], close: 1001 },
      { frames: [established(9), event(8)], close: 1006 },
      { frames: [established(9), event(9)], close: 4008 },
      { frames: [established(9)] },
    ], { waitMs: 6000 });
    assert.equal(log.urls.length, 4, log.urls.join('\n'));
    const params = log.urls.map((u) => Object.fromEntries(new URL(u).searchParams));
    assert.equal(params[0].last_event_id, undefined, 'the first connection starts fresh');
    assert.deepEqual(params.slice(1).map((p) => [p.last_event_id, p.epoch]), [['7', 'E1'], ['8', 'E1'], ['9', 'E1']]);
    assert.ok(new URL(log.urls[0]).protocol === 'ws:' && params.every((p) => p.token === 'TOKEN'));
    assert.deepEqual(log.events, [6, 7, 8, 9], 'replayed events in order, none twice');
    assert.deepEqual(log.resyncs, [['initial', 5]], 'a resume needs no REST refetch');
    assert.deepEqual(log.statuses.slice(0, 4), ['connecting', 'live', 'reconnecting', 'live']);
  });

  it('refetches on resync_required and resumes from its position', async () => {
    const log = await run([
      { frames: [established(5), event(6)], close: 1006 },
      { frames: [established(40, 'E2'), { type: 'resync_required', payload: { epoch: 'E2', last_event_id: 40 } }, event(41)], close: 1006 },
      { frames: [established(41, 'E2')] },
    ], { waitMs: 4000 });
    assert.deepEqual(log.resyncs, [['initial', 5], ['resync_required', 40]]);
    assert.deepEqual(log.events, [6, 41]);
    const last = new URL(log.urls.at(-1)).searchParams;
    assert.deepEqual([last.get('last_event_id'), last.get('epoch')], ['41', 'E2']);
  });

  it('backs off exponentially with jitter while the server is down', async () => {
    const down = { close: 1006 };
    const log = await run([down, down, down, down, down, down], { waitMs: 9000 });
    // Delays between attempts: 250–500, 500–1000, 1000–2000, 2000–4000 ms, plus the fake
    // socket's 10 ms and some slack for a busy machine.
    const slack = 400;
    const [d1, d2, d3, d4] = log.delays;
    assert.ok(log.delays.length >= 4, `attempts: ${log.delays}`);
    assert.ok(d1 >= 245 && d1 <= 500 + slack, `first delay ${d1}`);
    assert.ok(d2 >= 495 && d2 <= 1000 + slack, `second delay ${d2}`);
    assert.ok(d3 >= 995 && d3 <= 2000 + slack, `third delay ${d3}`);
    assert.ok(d4 >= 1995 && d4 <= 4000 + slack, `fourth delay ${d4}`);
    assert.ok(log.statuses.includes('reconnecting'));

    const { backoffDelay } = await page.evaluate(async () => {
      const m = await import('/assets/connection.js');
      const samples = Array.from({ length: 200 }, () => m.backoffDelay(3));
      return { backoffDelay: { min: Math.min(...samples), max: Math.max(...samples), distinct: new Set(samples).size, capped: m.backoffDelay(50) } };
    });
    assert.ok(backoffDelay.min >= 2000 && backoffDelay.max <= 4000, JSON.stringify(backoffDelay));
    assert.ok(backoffDelay.distinct > 50, 'jittered, not fixed');
    assert.ok(backoffDelay.capped <= 30_000 && backoffDelay.capped >= 15_000, 'capped at 30 s');
  });
});
