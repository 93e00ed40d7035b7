// The super admin's dashboard in two tabs: live updates, forms, the bell, the feed, charts,
// and a server restart.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ADMIN, unique } from './support/server.js';
import { launch, session, signIn, waitForStatus, unreadCount, until } from './support/browser.js';

describe('super admin dashboard', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.dispose();
  });

  it('shows a business created in tab 1 in tab 2 within 1 s, without reload, as text', (t) =>
    session(t, browser, async (tabs) => {
      const tab1 = await tabs.open();
      const tab2 = await tabs.open();
      await signIn(tab1, server.url, ADMIN);
      // Tab 2's snapshot is slow, as on a loaded server: it is Live before its counts come.
      await tab2.route('**/api/dashboard/', async (route) => {
        await new Promise((r) => setTimeout(r, 700));
        await route.continue();
      });
      await signIn(tab2, server.url, ADMIN);
      await tab2.locator('#stat-businesses', { hasText: /^\d+$/ }).waitFor();
      const before = Number(await tab2.locator('#stat-businesses').textContent());

      // A name with markup: it must show as text, never become elements.
      const tag = unique('two-tab');
      const name = `<b>Salon</b> "${tag}"`;
      const subdomain = unique('twotab');
      const form = tab1.locator('#create-business-form');
      await form.getByLabel('Name').fill(name);
      await form.getByLabel('Subdomain').fill(subdomain);
      await form.getByLabel('Owner email').fill('owner@example.com');
      await form.getByRole('button', { name: 'Create business' }).click();
      await tab1.locator('#business-rows tr', { hasText: name }).waitFor({ timeout: 5000 });

      const start = Date.now();
      await tab2.locator('#business-rows tr', { hasText: name }).waitFor({ timeout: 1000 });
      assert.ok(Date.now() - start <= 1000);
      await until(async () => Number(await tab2.locator('#stat-businesses').textContent()) === before + 1, {
        timeout: 1000,
        message: 'business count + 1 in tab 2',
      });
      assert.equal(await tab2.locator('#business-rows b').count(), 0, 'no <b> element was injected');
      await tab2.locator('#activity li[data-type="business_created"]', { hasText: tag }).waitFor({ timeout: 1000 });
      assert.equal(tabs.problems.length, 0, tabs.problems.join('\n'));
    }));

  it("shows the server's validation errors at the field", (t) =>
    session(t, browser, async (tabs) => {
      const tab = await tabs.open();
      await signIn(tab, server.url, ADMIN);
      const form = tab.locator('#create-business-form');
      await form.getByLabel('Name').fill('Valid name');
      await form.getByLabel('Subdomain').fill('Not A Subdomain!');
      await form.getByLabel('Owner email').fill('not-an-email');
      await form.getByRole('button', { name: 'Create business' }).click();
      const subError = form.locator('[data-field="subdomain"] .field-error');
      await subError.waitFor({ state: 'visible', timeout: 5000 });
      assert.notEqual((await subError.textContent()).trim(), '');
      assert.equal(await form.getByLabel('Subdomain').getAttribute('aria-invalid'), 'true');

      // A subdomain that is taken: 409, shown at the subdomain field too.
      const taken = unique('taken');
      await server.createBusiness('First', taken, 'owner@example.com');
      await form.getByLabel('Subdomain').fill(taken);
      await form.getByLabel('Owner email').fill('owner@example.com');
      await form.getByRole('button', { name: 'Create business' }).click();
      await until(async () => (await form.getByLabel('Subdomain').getAttribute('aria-invalid')) === 'true' &&
        (await form.locator('[data-field="owner_email"] .field-error').isHidden()), { message: 'conflict at the subdomain field' });
    }));

  it('edits and deletes a business, and the other tab follows', (t) =>
    session(t, browser, async (tabs) => {
      const b = await server.createBusiness(unique('Editable'), unique('edit'), 'owner@example.com');
      const tab1 = await tabs.open();
      const tab2 = await tabs.open();
      await signIn(tab1, server.url, ADMIN);
      await signIn(tab2, server.url, ADMIN);

      const row = tab1.locator('#business-rows tr', { hasText: b.name });
      await row.getByRole('button', { name: `Edit ${b.name}` }).click();
      const dialog = tab1.locator('dialog');
      await dialog.getByLabel('Name').fill('');
      await dialog.getByRole('button', { name: 'Save' }).click();
      await dialog.locator('[data-field="name"] .field-error').waitFor({ state: 'visible' });
      const renamed = `${b.name} (renamed)`;
      await dialog.getByLabel('Name').fill(renamed);
      await dialog.getByRole('button', { name: 'Save' }).click();
      await tab2.locator('#business-rows tr', { hasText: renamed }).waitFor({ timeout: 1000 });

      await tab1.locator('#business-rows tr', { hasText: renamed }).getByRole('button', { name: /^Delete/ }).click();
      await tab1.locator('dialog').getByRole('button', { name: 'Delete business' }).click();
      await tab2.locator('#business-rows tr', { hasText: renamed }).waitFor({ state: 'detached', timeout: 1000 });
    }));

  it('lists the newest 10 businesses, and the rest on request', (t) =>
    session(t, browser, async (tabs) => {
      for (let i = 0; i < 11; i++) await server.createBusiness(`Many ${i}`, unique(`many${i}`), 'owner@example.com');
      const tab = await tabs.open();
      await signIn(tab, server.url, ADMIN);
      await tab.locator('#business-rows tr', { hasText: 'Many 10' }).waitFor();
      assert.equal(await tab.locator('#business-rows tr').count(), 10);
      // A live one pushes the oldest out of the ten.
      await server.createBusiness('Many 11', unique('many11'), 'owner@example.com');
      await tab.locator('#business-rows tr', { hasText: 'Many 11' }).waitFor({ timeout: 1000 });
      assert.equal(await tab.locator('#business-rows tr').count(), 10);

      const total = Number(await tab.locator('#stat-businesses').textContent());
      await tab.getByRole('button', { name: 'Show more' }).click();
      await until(async () => (await tab.locator('#business-rows tr').count()) === total, { message: `${total} rows` });
      await tab.locator('#business-shown', { hasText: `Showing ${total} of ${total}` }).waitFor();
      assert.ok(await tab.getByRole('button', { name: 'Show more' }).isHidden());
    }));

  it("counts the bell's unread badge and clears it in both tabs", (t) =>
    session(t, browser, async (tabs) => {
      const tab1 = await tabs.open();
      const tab2 = await tabs.open();
      await signIn(tab1, server.url, ADMIN);
      await signIn(tab2, server.url, ADMIN);

      // Start from zero: mark everything read in tab 1; tab 2 hears the receipt.
      await tab1.locator('#bell').click();
      await tab1.getByRole('button', { name: 'Mark all read' }).click();
      for (const tab of [tab1, tab2]) {
        await until(async () => (await unreadCount(tab)) === 0, { message: 'badge 0 after first read' });
      }
      assert.ok(await tab2.locator('#bell-badge').isHidden());

      await server.createBusiness(unique('Bell one'), unique('bell'), 'owner@example.com');
      await server.createBusiness(unique('Bell two'), unique('bell'), 'owner@example.com');
      for (const tab of [tab1, tab2]) {
        await until(async () => (await unreadCount(tab)) === 2, { message: 'badge 2' });
        assert.equal((await tab.locator('#bell-badge').textContent()).trim(), '2');
      }

      // Mark all read in tab 2 this time; tab 1's badge clears too.
      await tab2.locator('#bell').click();
      await tab2.locator('#notif-list li.unread').first().waitFor();
      await tab2.getByRole('button', { name: 'Mark all read' }).click();
      for (const tab of [tab1, tab2]) {
        await until(async () => (await unreadCount(tab)) === 0, { timeout: 2000, message: 'badge cleared' });
        assert.ok(await tab.locator('#bell-badge').isHidden());
      }
      // Still right after the server confirms the count.
      await tab1.waitForTimeout(600);
      assert.equal(await unreadCount(tab1), 0);
    }));

  it('filters the activity feed by type and draws the charts', (t) =>
    session(t, browser, async (tabs) => {
      const b = await server.createBusiness(unique('Feed'), unique('feed'), 'owner@example.com');
      await server.book(b.id, 'Feed Customer');
      const tab = await tabs.open();
      await signIn(tab, server.url, ADMIN);
      await tab.locator('#activity li[data-type="reservation_created"]').first().waitFor();
      await tab.getByLabel('Show').selectOption('reservation_created');
      await until(async () => {
        const types = await tab.locator('#activity li').evaluateAll((els) => els.map((e) => e.dataset.type));
        return types.length > 0 && types.every((x) => x === 'reservation_created');
      }, { message: 'only reservation_created in the feed' });

      // A live event of another type stays out of the filtered feed; one of the type comes in.
      const shown = await tab.locator('#activity li').count();
      await server.createBusiness(unique('Filtered out'), unique('fo'), 'owner@example.com');
      await server.book(b.id, 'Live Filtered');
      await until(async () => (await tab.locator('#activity li').count()) === shown + 1, { message: 'the new reservation in the feed' });
      const types = await tab.locator('#activity li').evaluateAll((els) => els.map((e) => e.dataset.type));
      assert.ok(types.every((x) => x === 'reservation_created'), types.join());

      const events = await tab.locator('#chart-events').getAttribute('aria-label');
      assert.match(events, /Events per minute over the last hour: [1-9]\d* in total/);
      await until(async () => /Feed[^,]* [1-9]/.test(await tab.locator('#chart-reservations').getAttribute('aria-label')), {
        message: 'reservations chart shows the booked business',
      });
    }));

  it('shows Reconnecting while the server restarts, then Live, and what was created meanwhile', (t) =>
    session(t, browser, async (tabs) => {
      const tab = await tabs.open();
      await signIn(tab, server.url, ADMIN);
      const sockets = [];
      tab.on('websocket', (ws) => sockets.push(ws.url()));

      await server.stop();
      await waitForStatus(tab, 'Reconnecting', 5000);
      await server.restart();
      // Created before the tab has reconnected (its backoff is still waiting): it must
      // arrive through the resume (last_event_id + epoch), with no reload.
      const name = unique('While down');
      await server.createBusiness(name, unique('down'), 'owner@example.com');
      await waitForStatus(tab, 'Live', 15_000);
      await tab.locator('#business-rows tr', { hasText: name }).waitFor({ timeout: 2000 });
      await tab.locator('#activity li', { hasText: name }).first().waitFor({ timeout: 2000 });

      const resumed = sockets.map((u) => new URL(u)).filter((u) => u.searchParams.has('last_event_id'));
      assert.ok(resumed.length > 0, `a reconnect resumed: ${sockets.join(' ')}`);
      assert.ok(resumed.every((u) => u.searchParams.get('epoch')), 'every resume names its epoch');
    }));
});
