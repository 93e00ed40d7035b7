// The installable app: the service worker registers for the whole origin, the manifest is
// one Chromium accepts (icons load as PNGs of their declared sizes), a pushed event becomes a
// system notification while no dashboard window is in front and its click opens the business,
// the offline page replaces the browser's error when the server is down, and the
// notifications toggle asks for permission only when pressed.
//
// How the push is driven: Chromium's own push service (FCM) is unreachable from this closed
// network, and Playwright's contexts are incognito, where Chromium has no Push API at all. So
// the push reaches the service worker through DevTools — `ServiceWorker.deliverPushMessage`
// fires a real `push` event in the worker with the event frame as its data, exactly what the
// server's Web Push payload decrypts to (API.md: the payload is the event frame). The frame
// is a real one, read back from the server's `/api/activity/`. A system notification cannot
// be clicked in headless Chromium, so the click is the worker's own `openTarget()` (what its
// `notificationclick` handler runs) called with the notification's data, in the worker.
// For the toggle, `PushManager.subscribe` is stubbed (it cannot succeed here, see above);
// the permission request, the key fetch and the POST/DELETE to the server are real.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { startServer, unique } from './support/server.js';
import { launch, session, signIn, until } from './support/browser.js';

/** Width and height from a PNG's IHDR chunk; null when the bytes are not a PNG. */
function pngSize(buf) {
  if (buf.length < 24 || buf.toString('latin1', 1, 4) !== 'PNG' || buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** The notifications the page's service worker registration shows now. */
const notifications = (page) =>
  page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
    .map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })));

/** The DevTools registration id of the origin's service worker (for deliverPushMessage). */
async function registrationId(cdp) {
  const regs = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => regs.push(...e.registrations));
  await cdp.send('ServiceWorker.enable');
  return until(() => regs.find((r) => !r.isDeleted)?.registrationId, { message: 'the service worker registration' });
}

/** Records the page's calls to `/api/push/**` (method, path, body, status, answer) to the real server. */
async function recordPushCalls(page, server) {
  const calls = [];
  await page.route(`${server.url}/api/push/**`, async (route) => {
    const req = route.request();
    const res = await route.fetch();
    const answer = await res.json().catch(() => null);
    calls.push({ method: req.method(), path: new URL(req.url()).pathname, body: req.postDataJSON(), status: res.status(), answer });
    await route.fulfill({ response: res });
  });
  return calls;
}

describe('installable app: service worker, manifest, notifications, offline page', () => {
  let server;
  let browser;
  let owner;
  let first;
  let second;
  before(async () => {
    // Loopback push endpoints (the stubbed browser's) are allowed only with this flag.
    server = await startServer({ APP_PUSH_ALLOW_INSECURE: 'true' });
    browser = await launch();
    owner = await server.createOwner(`${unique('pwa')}@example.com`);
    first = await server.createBusiness('First Salon', unique('first'), owner.email);
    second = await server.createBusiness('Second Salon', unique('second'), owner.email);
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('registers its service worker for the whole origin and has a valid manifest', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await page.goto(`${server.url}/`);
      const scope = await page.evaluate(() => navigator.serviceWorker.ready.then((r) => r.scope));
      assert.equal(scope, `${server.url}/`);
      await until(() => page.evaluate(() => navigator.serviceWorker.controller?.scriptURL), { message: 'the page to be controlled' });

      const cdp = await page.context().newCDPSession(page);
      const manifest = await cdp.send('Page.getAppManifest');
      assert.deepEqual(manifest.errors, [], 'Chromium parses the manifest without errors');
      assert.equal(manifest.url, `${server.url}/assets/manifest.webmanifest`);
      const res = await page.request.get(manifest.url);
      assert.equal(res.headers()['content-type'], 'application/manifest+json');
      const m = await res.json();
      assert.ok(m.name && m.short_name, 'name and short_name');
      assert.equal(m.start_url, '/');
      assert.equal(m.display, 'standalone');
      assert.ok(m.theme_color && m.background_color);
      const sizes = m.icons.map((i) => i.sizes);
      assert.ok(sizes.includes('192x192') && sizes.includes('512x512'), `icon sizes ${sizes}`);
      assert.ok(m.icons.some((i) => i.purpose === 'maskable'), 'a maskable icon');
      for (const icon of m.icons) {
        const png = await page.request.get(new URL(icon.src, manifest.url).href);
        assert.equal(png.status(), 200, icon.src);
        assert.equal(png.headers()['content-type'], 'image/png', icon.src);
        assert.equal(icon.type, 'image/png');
        assert.equal(pngSize(await png.body())?.join('x'), icon.sizes, `${icon.src} is a PNG of ${icon.sizes}`);
      }
      // What Chromium itself says would stop it from offering "Install app" (incognito
      // aside: Playwright's contexts are incognito, which only Chromium's UI minds).
      const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
      const blocking = installabilityErrors.filter((e) => e.errorId !== 'in-incognito');
      assert.deepEqual(blocking, [], 'no installability errors');
    }));

  it('shows a notification for a pushed event only while no dashboard window is in front, and its click opens that business', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await page.context().grantPermissions(['notifications'], { origin: server.url });
      await signIn(page, server.url, owner);
      // The owner view starts on all their businesses; the push is about the second one.
      await page.locator('#business-name', { hasText: 'All your businesses' }).waitFor();
      const target = second;
      const cdp = await page.context().newCDPSession(page);
      const registration = await registrationId(cdp);

      await server.book(target.id, 'Nina Notified', { service: 'Colour' });
      const token = await server.login(owner.email, owner.password);
      const { items } = await server.api('GET', '/api/activity/', { token });
      const frame = items.find((e) => e.type === 'reservation_created' && e.payload.reservation.customer_name === 'Nina Notified');
      assert.ok(frame, 'the booking event is in the activity log');
      const push = (data = frame) => cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId: registration, data: JSON.stringify(data) });

      // The dashboard window is focused (Playwright emulates focus): the page shows it live.
      await push();
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(await notifications(page), [], 'no notification while the dashboard is in front');

      // Another window in front: the dashboard loses focus, as when the phone shows another app.
      await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
      const other = await tabs.open(undefined, { sameWindowAs: page });
      await other.goto('about:blank');
      await other.bringToFront();
      await push();
      const [shown] = await until(async () => {
        const list = await notifications(page);
        return list.length ? list : null;
      }, { message: 'a system notification' });
      assert.equal(shown.title, frame.payload.message, 'the title is the event message');
      assert.match(shown.body, /Nina Notified · Colour/);
      assert.equal(shown.tag, `business-${target.id}`);
      assert.equal(shown.data.url, `/?business=${target.id}`);
      assert.equal(shown.data.eventId, frame.id);

      // A burst for one business becomes one notification that counts them.
      // The server's own coalescing: one push standing for 2 events (README "Web Push").
      await push({ ...frame, coalesced: 2 });
      const [coalesced, ...rest] = await until(async () => {
        const list = await notifications(page);
        return list[0]?.data.count === 3 ? list : null;
      }, { message: 'the second push coalesced into the first notification' });
      assert.equal(rest.length, 0);
      assert.match(coalesced.body, /\+2 more updates/);

      // The click: the worker's notificationclick handler runs openTarget(data.url).
      const [worker] = page.context().serviceWorkers();
      await worker.evaluate((url) => openTarget(url), coalesced.data.url);
      await page.locator('#business-name', { hasText: target.name }).waitFor();
      assert.equal(new URL(page.url()).search, '', 'the link is dropped from the address bar');
    }));

  it('asks for the notification permission only when the toggle is pressed, and subscribes and unsubscribes with the server', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      const context = page.context();
      await context.grantPermissions(['notifications'], { origin: server.url });
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const fake = {
        endpoint: `http://127.0.0.1:9/push/${b64url(randomBytes(16))}`,
        keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(randomBytes(16)) },
      };
      // The stub stands in for the browser's push service only; it keeps its subscription in
      // localStorage so that a reload sees it, as a real one would.
      await context.addInitScript((sub) => {
        window.permissionAsks = 0;
        const ask = Notification.requestPermission.bind(Notification);
        Notification.requestPermission = (...args) => {
          window.permissionAsks += 1;
          return ask(...args);
        };
        const load = () => {
          const saved = JSON.parse(localStorage.getItem('stub.subscription') || 'null');
          if (!saved) return null;
          const key = Uint8Array.from(atob(saved.key), (c) => c.charCodeAt(0));
          return {
            endpoint: sub.endpoint,
            options: { userVisibleOnly: true, applicationServerKey: key.buffer },
            toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }),
            unsubscribe: async () => {
              localStorage.removeItem('stub.subscription');
              return true;
            },
          };
        };
        PushManager.prototype.getSubscription = async () => load();
        PushManager.prototype.subscribe = async (options) => {
          const key = new Uint8Array(options.applicationServerKey);
          localStorage.setItem('stub.subscription', JSON.stringify({ key: btoa(String.fromCharCode(...key)), userVisibleOnly: options.userVisibleOnly }));
          return load();
        };
      }, fake);
      const calls = await recordPushCalls(page, server);

      await signIn(page, server.url, owner);
      const toggle = page.locator('#push-toggle');
      await toggle.waitFor();
      assert.equal(await toggle.textContent(), 'Notifications: off');
      await page.reload();
      await toggle.waitFor();
      assert.equal(await page.evaluate(() => window.permissionAsks), 0, 'no permission request before the press');
      assert.deepEqual(calls, [], 'nothing sent to the server before the press');

      await toggle.click();
      await page.locator('#push-toggle[aria-pressed="true"]').waitFor();
      assert.equal(await page.evaluate(() => window.permissionAsks), 1);
      assert.match(await page.locator('#push-message').textContent(), /on for this device/);
      const [key, post] = calls;
      assert.deepEqual([key.method, key.path, key.status], ['GET', '/api/push/key', 200]);
      const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('stub.subscription')));
      assert.equal(Buffer.from(stored.key, 'base64').toString('base64url'), key.answer.public_key, 'subscribed with the server key');
      assert.equal(stored.userVisibleOnly, true);
      assert.deepEqual([post.method, post.path, post.status], ['POST', '/api/push/subscriptions/', 201]);
      assert.deepEqual(post.body.keys, fake.keys);
      assert.equal(post.body.endpoint, fake.endpoint);
      assert.ok(post.answer.id, 'the server answers an id');

      // A reload shows the truth, still without asking.
      await page.reload();
      await page.locator('#push-toggle[aria-pressed="true"]').waitFor();
      assert.equal(await page.evaluate(() => window.permissionAsks), 0);

      await toggle.click();
      await page.locator('#push-toggle[aria-pressed="false"]').waitFor();
      const del = calls[2];
      assert.deepEqual([del.method, del.path, del.status], ['DELETE', `/api/push/subscriptions/${post.answer.id}/`, 204]);
      assert.equal(await page.evaluate(() => localStorage.getItem('stub.subscription')), null, 'unsubscribed in the browser');
      assert.match(await page.locator('#push-message').textContent(), /off for this device/);
    }));

  it('says plainly when the browser cannot subscribe or the permission is refused', (t) =>
    session(t, browser, async (tabs) => {
      // Granted, but the real push manager: Chromium refuses (incognito, no push service).
      const page = await tabs.open();
      await page.context().grantPermissions(['notifications'], { origin: server.url });
      await recordPushCalls(page, server);
      await signIn(page, server.url, owner);
      await page.locator('#push-toggle').click();
      await page.locator('#push-message', { hasText: /push service/ }).waitFor();
      assert.equal(await page.locator('#push-toggle').getAttribute('aria-pressed'), 'false');

      // Refused: headless Chromium answers a permission request it may not show with "denied".
      const refused = await tabs.open();
      await signIn(refused, server.url, owner);
      await refused.locator('#push-toggle').click();
      await refused.locator('#push-message', { hasText: /blocked|not given/ }).waitFor();
      assert.equal(await refused.locator('#push-toggle').getAttribute('aria-pressed'), 'false');
    }));

  it('shows the offline page, not the browser error, when the server cannot be reached', (t) =>
    session(t, browser, async (tabs) => {
      const page = await tabs.open();
      await page.goto(`${server.url}/`);
      await until(() => page.evaluate(() => navigator.serviceWorker.controller?.scriptURL), { message: 'the page to be controlled' });
      const cached = await page.evaluate(async () => {
        const urls = [];
        for (const name of await caches.keys()) {
          for (const req of await (await caches.open(name)).keys()) urls.push(new URL(req.url).pathname);
        }
        return urls.sort();
      });
      assert.deepEqual(cached, ['/assets/app.css', '/assets/icon.svg', '/assets/offline.html', '/assets/pwa.css'], 'only the offline page and what it shows are cached');

      await server.stop();
      try {
        await page.goto(`${server.url}/`);
        await page.getByRole('heading', { name: 'The server cannot be reached' }).waitFor();
        const color = await page.locator('a.btn-primary').evaluate((a) => getComputedStyle(a).backgroundColor);
        assert.equal(color, 'rgb(47, 95, 196)', 'styled from the cached stylesheet');
      } finally {
        await server.restart();
      }
      await page.getByRole('link', { name: 'Try again' }).click();
      await page.getByLabel('Email').waitFor();
    }));
});
