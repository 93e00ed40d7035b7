// support/browser.js — Debian's Chromium driven by playwright-core, plus page helpers.
//
// `session(t)` gives a test fresh tabs and, if the test fails, saves a screenshot of every
// tab it opened to tests/browser/artifacts/ (gitignored) with the page's console errors.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Launches headless Chromium with the flags this closed network needs, plus `args`. */
export function launch({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...args,
    ],
  });
}

const safe = (s) => s.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 80);

/**
 * Runs `fn(tabs)` where `tabs.open(viewport?)` opens a new tab. Each tab gets its own
 * browser context, i.e. its own window: Chromium throttles rendering of a tab hidden behind
 * another in the same window (animation frames ~1 s apart), which a person looking at two
 * windows side by side never sees. Separate contexts share no storage, so each tab signs in
 * on its own; `tabs.open(viewport, { sameWindowAs: page })` opens a tab in `page`'s context
 * instead, sharing its localStorage (one session, as two tabs of one browser).
 * On failure: a full-page screenshot of each tab, and its console errors, in ARTIFACTS.
 * With SCREENSHOTS=always, screenshots are kept for passing tests too.
 */
export async function session(t, browser, fn) {
  const contexts = [];
  const pages = [];
  const problems = [];
  const tabs = {
    async open(viewport = { width: 1280, height: 900 }, { sameWindowAs } = {}) {
      let context = sameWindowAs?.context();
      if (!context) {
        context = await browser.newContext({ viewport });
        contexts.push(context);
      }
      const page = await context.newPage();
      const n = pages.length + 1;
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(`tab ${n} console: ${msg.text()}`);
      });
      page.on('pageerror', (err) => problems.push(`tab ${n} page error: ${err.message}`));
      pages.push(page);
      return page;
    },
    problems,
  };
  let failed = null;
  try {
    await fn(tabs);
  } catch (err) {
    failed = err;
  }
  if (failed || process.env.SCREENSHOTS === 'always') {
    mkdirSync(ARTIFACTS, { recursive: true });
    const base = safe(t.fullName || t.name);
    for (const [i, page] of pages.entries()) {
      if (page.isClosed()) continue;
      const file = join(ARTIFACTS, `${base}-tab${i + 1}${failed ? '-FAILED' : ''}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    }
    if (failed) writeFileSync(join(ARTIFACTS, `${base}-console.txt`), `${failed.stack}\n\n${problems.join('\n')}\n`);
  }
  await Promise.all(contexts.map((c) => c.close()));
  if (failed) {
    if (problems.length) failed.message += `\n--- browser console ---\n${problems.join('\n')}`;
    throw failed;
  }
}

/** Signs in on the dashboard at `url` and waits until the channel is Live. */
export async function signIn(page, url, { email, password }) {
  await page.goto(`${url}/`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForStatus(page, 'Live');
}

/** Waits until the connection status reads `text` (Live, Reconnecting, Offline). */
export async function waitForStatus(page, text, timeout = 10_000) {
  await page.locator('#conn-status', { hasText: text }).waitFor({ timeout });
}

/** The bell's unread count as a number (the badge is hidden at zero). */
export async function unreadCount(page) {
  return Number(await page.locator('#bell').getAttribute('data-unread'));
}

/** Polls `fn` until it returns truthy, or fails after `timeout` ms with `message`. */
export async function until(fn, { timeout = 5000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${JSON.stringify(last)})`);
}
