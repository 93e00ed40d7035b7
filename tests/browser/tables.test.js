// Tables that read well: at phone, tablet and desktop widths no table cell breaks a word
// in the middle ("Confirme / d", an email address split across lines), and a table too wide
// for its card scrolls inside the card instead of widening the page. The owner's tables are
// those of an owner of two businesses (the business column shows): today, upcoming, and
// past and cancelled (opened), and the business switcher.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn } from './support/browser.js';

const WIDTHS = [375, 480, 768, 1024, 1280];

/**
 * Runs in the page: every word (a run of non-spaces) of every visible table cell whose
 * rendered boxes sit on more than one line, i.e. words the layout broke in the middle.
 */
function brokenWords() {
  const broken = [];
  for (const cell of document.querySelectorAll('table td, table th')) {
    if (!cell.getClientRects().length) continue; // not rendered
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(`${cell.className || cell.tagName}: "${m[0]}" on ${lines.size} lines`);
      }
    }
  }
  // The switcher's counts ("2 today · 5 upcoming") keep to one line, and its names break
  // only between words, like the cells.
  for (const el of document.querySelectorAll('.biz-tab span')) {
    if (!el.getClientRects().length) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(`${el.className}: "${m[0]}" on ${lines.size} lines`);
      }
    }
  }
  return broken;
}

/** Runs in the page: each table's wrapper either fits its card or scrolls sideways inside it. */
function overflowing() {
  const bad = [];
  for (const wrap of document.querySelectorAll('.table-wrap')) {
    if (!wrap.getClientRects().length) continue;
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(wrap).overflowX);
    if (wrap.scrollWidth > wrap.clientWidth + 1 && !scrolls) bad.push(`${wrap.firstElementChild?.id} overflows`);
    const card = wrap.closest('.card');
    if (card && wrap.getBoundingClientRect().right > card.getBoundingClientRect().right + 1) bad.push(`${wrap.firstElementChild?.id} leaves its card`);
  }
  if (document.documentElement.scrollWidth > window.innerWidth) {
    // Name the outermost elements that stick out, to say what widens the page.
    const out = [...document.body.querySelectorAll('*')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1
      && !(el.parentElement.getBoundingClientRect().right > window.innerWidth + 1));
    bad.push(`page is ${document.documentElement.scrollWidth}px wide: ${out.slice(0, 3).map((el) => `${el.tagName}.${el.className}`).join(', ')}`);
  }
  return bad;
}

describe('tables from 375 to 1280 px', () => {
  let server;
  let browser;
  let owner;
  let tables;
  before(async () => {
    server = await startServer();
    browser = await launch();
    owner = await server.createOwner(`${unique('owner.of.several.salons')}@example-salons.com`);
    const b = await server.createBusiness('The Rather Long Named Salon Of The High Street', unique('long'), owner.email);
    const second = await server.createBusiness('Supercalifragilistic Hairdressing', unique('second'), owner.email);
    // Today (a few minutes ahead, as long as that is still today), and one that has passed.
    const soon = new Date(Date.now() + 5 * 60_000);
    tables = ['#reservation-table', '#past-table'];
    if (soon.getDate() === new Date().getDate()) {
      await server.book(second.id, 'Today Customer With A Long Name', {
        starts_at: soon.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        customer_email: 'today.customer.with.a.long.address@example-salons.com',
        service: 'Balayage and treatment',
      });
      tables.push('#today-table');
    }
    await server.book(second.id, 'Passed Customer', { starts_at: new Date(Date.now() + 2000).toISOString().replace(/\.\d{3}Z$/, 'Z') });
    const emails = ['firstname.lastname.customer@a-long-domain-name.example.com', 'short@example.com', 'another.customer.with.mail@example.org'];
    const booked = [];
    for (const [i, email] of emails.entries()) {
      booked.push(await server.book(b.id, `Customer Number ${i + 1} With Several Names`, {
        customer_email: email,
        service: 'Colour, cut and styling session',
      }));
    }
    await server.api('POST', `/api/businesses/${b.id}/reservations/${booked[1].id}/cancel/`, { token: await server.adminToken() });
    await new Promise((r) => setTimeout(r, 2500)); // "Passed Customer" is past by now
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  for (const width of WIDTHS) {
    it(`never breaks a word inside a table cell at ${width} px`, (t) =>
      session(t, browser, async (tabs) => {
        const viewport = { width, height: 900 };
        const admin = await tabs.open(viewport);
        const own = await tabs.open(viewport);
        await signIn(admin, server.url, ADMIN);
        await signIn(own, server.url, owner);
        await admin.locator('#business-rows tr').first().waitFor();
        await own.locator('#reservation-rows tr').nth(1).waitFor();
        await own.locator('#past summary').click();
        await own.locator('#past-rows tr').nth(1).waitFor();
        for (const id of tables) assert.ok(await own.locator(id).isVisible(), `${id} is shown`);
        const problems = {};
        for (const [name, page] of Object.entries({ admin, owner: own })) {
          const found = [...(await page.evaluate(brokenWords)), ...(await page.evaluate(overflowing))];
          if (found.length) problems[name] = found;
        }
        assert.deepEqual(problems, {}, `at ${width} px`);
      }));
  }
});
