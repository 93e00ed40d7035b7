// icons.mjs — renders the installable app's PNG icons (src/web/icons/) from src/web/icon.svg.
//
// Not a test: `node tests/browser/icons.mjs` after `scripts/browser-tests.sh` has installed
// Chromium and the npm packages; the PNGs are committed, so the binary needs no build step.
// A maskable icon is cropped to a circle or squircle by the phone, so its glyph sits inside
// the central 80 % "safe zone" on a full-bleed background (no rounded corners of its own).
import { launch } from './support/browser.js';
import { REPO } from './support/server.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const svg = readFileSync(join(REPO, 'src', 'web', 'icon.svg'), 'utf8');
const CHECK = /<path[^>]*\/>/.exec(svg)[0];
const maskable = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" fill="#2f5fc4"/><g transform="translate(16 16) scale(0.7) translate(-16 -16)">${CHECK}</g></svg>`;

const browser = await launch();
try {
  const page = await browser.newPage();
  for (const [name, source, size] of [
    ['icon-192.png', svg, 192],
    ['icon-512.png', svg, 512],
    ['maskable-512.png', maskable, 512],
  ]) {
    await page.setViewportSize({ width: size, height: size });
    const body = source.replace('<svg ', `<svg width="${size}" height="${size}" `);
    await page.setContent(`<html><body style="margin:0;background:transparent">${body}</body></html>`);
    const file = join(REPO, 'src', 'web', 'icons', name);
    await page.locator('svg').screenshot({ path: file, omitBackground: true });
    console.log(`saved ${file}`);
  }
} finally {
  await browser.close();
}
