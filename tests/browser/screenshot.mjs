// screenshot.mjs — renders the README's screenshot (docs/dashboard.png) from a real server.
//
// Not a test: `node tests/browser/screenshot.mjs` after `scripts/browser-tests.sh` has
// installed Chromium and the npm packages. It seeds a few salons and bookings over the REST
// API, signs in as the super admin, books one more while the page is live (so the chart and
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

const server = await startServer();
const browser = await launch();
try {
  await server.createOwner('owner@example.com');
  const businesses = [];
  for (const [name, subdomain] of SALONS) {
    businesses.push(await server.createBusiness(name, subdomain, 'owner@example.com'));
  }
  for (const [i, customer] of CUSTOMERS.entries()) {
    await server.book(businesses[i % 3].id, customer, { service: i % 2 ? 'Colour' : 'Haircut' });
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await signIn(page, server.url, ADMIN);
  await server.book(businesses[0].id, 'Gus Romero', { service: 'Beard trim' });
  await until(async () => (await page.locator('#bell').getAttribute('data-unread')) !== '0', {
    message: 'the live booking to reach the bell',
  });
  // The per-business chart refetches its counts 300 ms after a booking (debounced).
  await new Promise((r) => setTimeout(r, 1000));
  const file = join(REPO, 'docs', 'dashboard.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log(`saved ${file}`);
} finally {
  await browser.close();
  await server.dispose();
}
