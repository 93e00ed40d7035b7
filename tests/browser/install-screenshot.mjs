// install-screenshot.mjs — renders the README's phone screenshot (docs/install.png) from a
// real server: an owner's dashboard in a phone-sized viewport, with the notifications toggle
// in the top bar (off, as an owner first finds it).
//
// Not a test: `node tests/browser/install-screenshot.mjs` after `scripts/browser-tests.sh`
// has installed Chromium and the npm packages.
import { launch, signIn } from './support/browser.js';
import { startServer, REPO } from './support/server.js';
import { join } from 'node:path';

const server = await startServer();
const browser = await launch();
try {
  const owner = await server.createOwner('maria@example.com');
  const salon = await server.createBusiness('Shear Bliss', 'shear-bliss', owner.email);
  for (const [customer, service] of [['Ana Lima', 'Haircut'], ['Ben Okafor', 'Colour'], ['Chloé Martin', 'Blow-dry']]) {
    await server.book(salon.id, customer, { service });
  }
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  await signIn(page, server.url, owner);
  await page.locator('#push-toggle').waitFor();
  await page.locator('#reservation-rows tr').first().waitFor();
  const file = join(REPO, 'docs', 'install.png');
  await page.screenshot({ path: file });
  console.log(`saved ${file}`);
} finally {
  await browser.close();
  await server.dispose();
}
