// The token renewal (src/web/renewal.js) run in Node against an in-memory localStorage: two
// tabs sharing one session renew it once, not once each (a second presentation of the same
// refresh token would revoke the whole family); a 401 ends the session, a network failure
// does not.

import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createRenewer } from '../../src/web/renewal.js';
import { renewalDue, saveSession, readSession } from '../../src/web/session.js';

/** localStorage as both tabs see it (Web Locks are absent in Node: the lease fallback runs). */
class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** An unsigned JWT-shaped token living `ttl` seconds from now; `n` tells tokens apart. */
const jwt = (n, ttl = 20) => {
  const iat = Math.floor(Date.now() / 1000);
  return `${b64({ alg: 'HS256' })}.${b64({ sub: 'u1', n, iat, exp: iat + ttl })}.sig`;
};

/** A fake `POST /api/auth/refresh/` with rotation and reuse detection, as the server has. */
function fakeServer() {
  const server = { live: new Set(['r0']), calls: 0, n: 0, reused: false };
  server.refresh = async (refresh) => {
    server.calls += 1;
    await new Promise((r) => setTimeout(r, 20));
    if (!server.live.delete(refresh)) {
      server.reused = true;
      throw Object.assign(new Error('refused'), { status: 401 });
    }
    server.n += 1;
    const next = `r${server.n}`;
    server.live.add(next);
    return { access: jwt(server.n), refresh: next, user: { id: 'u1' } };
  };
  return server;
}

function tab(server) {
  const seen = { tokens: [], refused: 0 };
  const renewer = createRenewer({
    refresh: (r) => server.refresh(r),
    onToken: (s) => seen.tokens.push(s.token),
    onRefused: () => { seen.refused += 1; },
  });
  return { renewer, seen };
}

describe('renewal', () => {
  beforeEach(() => {
    globalThis.localStorage = new MemoryStorage();
  });

  it('is due at 80 % of the token lifetime', () => {
    const iat = 1_000_000;
    const token = `${b64({})}.${b64({ iat, exp: iat + 100 })}.x`;
    assert.equal(renewalDue(token), (iat + 80) * 1000);
    assert.equal(renewalDue('not a token'), null);
  });

  it('two tabs renewing the same token at once present the refresh token once', async () => {
    const server = fakeServer();
    const first = jwt(0);
    saveSession({ access: first, refresh: 'r0', user: { id: 'u1' } });
    const a = tab(server);
    const b = tab(server);
    const [ta, tb] = await Promise.all([a.renewer.renew(first), b.renewer.renew(first)]);
    assert.equal(server.calls, 1, 'one refresh for both tabs');
    assert.equal(server.reused, false);
    assert.equal(ta, tb, 'the second tab takes the token the first one stored');
    assert.notEqual(ta, first);
    assert.equal(readSession().refresh, 'r1', 'the rotated refresh token is kept');
    assert.equal(a.seen.refused + b.seen.refused, 0);
  });

  it('a refused refresh ends the session; an unreachable server does not', async () => {
    const server = fakeServer();
    const first = jwt(0);
    saveSession({ access: first, refresh: 'revoked', user: { id: 'u1' } });
    const a = tab(server);
    assert.equal(await a.renewer.renew(first), null);
    assert.equal(a.seen.refused, 1);

    saveSession({ access: first, refresh: 'r0', user: { id: 'u1' } });
    const down = createRenewer({
      refresh: async () => { throw Object.assign(new Error('network'), { status: 0 }); },
      onToken: () => assert.fail('no token'),
      onRefused: () => assert.fail('not refused'),
    });
    assert.equal(await down.renew(first), null);
    down.stop(); // cancels the retry it scheduled
  });
});
