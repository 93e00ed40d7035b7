// screenshot.mjs — renders the README's screenshots (docs/dashboard.png, docs/owner.png)
// from a real server.
//
// Not a test: `node tests/browser/screenshot.mjs [admin|owner]` (default admin) after
// `scripts/browser-tests.sh` has installed Chromium and the npm packages. It seeds a few
// salons and bookings over the REST API, signs in (as the super admin, or as the owner of
// three of the salons), books one more while the page is live (so the chart, the lists and
// the bell show it), and saves a full-page screenshot.
import { launch, signIn, until } from './support/browser.js';
import { startServer, ADMIN, REPO } from './support/server.js';
import { join } from 'node:path';

const SALONS = [
  ['Shear Bliss', 'shear-bliss'],
  ['The Blow Bar', 'blow-bar'],
  ['Nail Atelier', 'nail-atelier'],
  ['Barber & Co', 'barber-co'],
  ['Glow Spa', 'glow-spa'],
];
const CUSTOMERS = ['Ana Lima', 'Ben Okafor', 'Chloé Martin', 'Dev Patel', 'Eva Novak', 'Femi Ade'];

const MODE = process.argv[2] || 'admin';
if (!['admin', 'owner'].includes(MODE)) throw new Error(`usage: screenshot.mjs [admin|owner], not ${MODE}`);

/** RFC 3339 without milliseconds. */
const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * The owner's day: bookings at the three salons this afternoon (on the half hour, from the
 * next one on), over the next days, and one cancelled; then one more while the page is open.
 */
async function ownerDay(server, businesses, page) {
  const next = new Date();
  next.setMinutes(next.getMinutes() < 30 ? 30 : 60, 0, 0);
  const slot = (halfHours) => iso(new Date(next.getTime() + halfHours * 1_800_000));
  const plan = [
    [0, 'Ana Lima', 'Haircut', 1],
    [1, 'Ben Okafor', 'Colour', 2],
    [2, 'Chloé Martin', 'Manicure', 3],
    [1, 'Dev Patel', 'Beard trim', 5],
    [0, 'Eva Novak', 'Cut and blow-dry', 48],
    [2, 'Femi Ade', 'Gel nails', 52],
    [1, 'Hana Sato', 'Balayage', 100],
  ];
  const booked = [];
  for (const [b, name, service, at] of plan) {
    booked.push(await server.book(businesses[b].id, name, { service, starts_at: slot(at), customer_email: `${name.split(' ')[0].toLowerCase()}@example.com` }));
  }
  await server.api('POST', `/api/businesses/${businesses[1].id}/reservations/${booked[6].id}/cancel/`, { token: await server.adminToken() });
  await signIn(page, server.url, { email: 'owner@example.com', password: 'owner-pass-1' });
  await page.locator('#reservation-rows tr').nth(5).waitFor();
  await server.book(businesses[2].id, 'Gus Romero', { service: 'Pedicure', starts_at: slot(4), customer_email: 'gus@example.com' });
  await page.locator('#reservation-rows tr', { hasText: 'Gus Romero' }).waitFor();
}

const server = await startServer();
const browser = await launch();
try {
  await server.createOwner('owner@example.com');
  const businesses = [];
  for (const [name, subdomain] of SALONS) {
    businesses.push(await server.createBusiness(name, subdomain, 'owner@example.com'));
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  if (MODE === 'owner') {
    // Three of the salons are one owner's; the other two belong to someone else.
    await server.createOwner('other@example.com');
    for (const b of businesses.slice(3)) {
      await server.api('PATCH', `/api/businesses/${b.id}/`, { token: await server.adminToken(), body: { owner_email: 'other@example.com' } });
    }
    await ownerDay(server, businesses, page);
  } else {
    for (const [i, customer] of CUSTOMERS.entries()) {
      await server.book(businesses[i % 3].id, customer, { service: i % 2 ? 'Colour' : 'Haircut' });
    }
    await signIn(page, server.url, ADMIN);
    await server.book(businesses[0].id, 'Gus Romero', { service: 'Beard trim' });
  }
  await until(async () => (await page.locator('#bell').getAttribute('data-unread')) !== '0', {
    message: 'the live booking to reach the bell',
  });
  // The per-business chart refetches its counts 300 ms after a booking (debounced).
  await new Promise((r) => setTimeout(r, 1000));
  const file = join(REPO, 'docs', MODE === 'owner' ? 'owner.png' : 'dashboard.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log(`saved ${file}`);
} finally {
  await browser.close();
  await server.dispose();
}
