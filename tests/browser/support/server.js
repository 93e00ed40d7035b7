// support/server.js — runs the real `app serve` binary for a test and talks to its REST API.
//
// `startServer()` starts `target/debug/app serve --addr 127.0.0.1:0 --data <tmpdir>` with a
// known super admin, reads the printed address, and returns a handle that can stop and
// restart the server on the same port and data folder (a restart keeps all data).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..', '..');
export const BINARY = process.env.APP_BIN || join(REPO, 'target', 'debug', 'app');

export const ADMIN = { email: 'admin@example.com', password: 'secret-pass-1' };
const STARTUP_TIMEOUT_MS = 20_000;

/** A running `app serve` plus helpers; `stop()` it in `after`. */
export class TestServer {
  constructor(dataDir) {
    this.dataDir = dataDir;
    this.proc = null;
    this.url = null;
    this.addr = '127.0.0.1:0';
    this.log = [];
    /** Extra environment for the next start (e.g. another `APP_JWT_SECRET`). */
    this.env = {};
  }

  /** Starts the binary and waits for `app listening on http://…`. */
  async start() {
    if (!existsSync(BINARY)) throw new Error(`no binary at ${BINARY}: run cargo build first`);
    const proc = spawn(BINARY, ['serve', '--addr', this.addr, '--data', this.dataDir], {
      env: {
        ...process.env,
        APP_ADMIN_EMAIL: ADMIN.email,
        APP_ADMIN_PASSWORD: ADMIN.password,
        RUST_LOG: process.env.RUST_LOG || 'warn',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const keep = (chunk) => {
      this.log.push(chunk.toString());
      if (this.log.length > 500) this.log.shift();
    };
    proc.stderr.on('data', keep);
    this.url = await new Promise((resolvePromise, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`server did not print its address in ${STARTUP_TIMEOUT_MS} ms:\n${this.log.join('')}`)), STARTUP_TIMEOUT_MS);
      proc.stdout.on('data', (chunk) => {
        keep(chunk);
        buffered += chunk.toString();
        const m = /app listening on (http:\/\/[^\s]+)/.exec(buffered);
        if (m) {
          clearTimeout(timer);
          resolvePromise(m[1].replace(/\/$/, ''));
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code ?? signal}) before listening:\n${this.log.join('')}`));
      });
    });
    // Restarts reuse the port, so the browser's ws:// URL stays right.
    this.addr = new URL(this.url).host;
    return this;
  }

  /** SIGTERM, and wait for the process to exit. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    this.proc = null;
  }

  /** Stops and starts again on the same port and data; `env` is added to the environment. */
  async restart(env = {}) {
    this.env = { ...this.env, ...env };
    this.admin = undefined; // a new APP_JWT_SECRET voids the cached token
    await this.stop();
    // The port was just released; retry briefly in case the OS is slow to free it.
    for (let i = 0; ; i++) {
      try {
        return await this.start();
      } catch (err) {
        if (i >= 20) throw err;
        await sleep(250);
      }
    }
  }

  /** A fetch against this server's REST API; throws on non-2xx unless `expect` says otherwise. */
  async api(method, path, { token, body, expect } = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    const ok = expect ? res.status === expect : res.ok;
    if (!ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return data;
  }

  async login(email, password) {
    return (await this.api('POST', '/api/auth/token/', { body: { email, password } })).access;
  }

  async adminToken() {
    this.admin ??= await this.login(ADMIN.email, ADMIN.password);
    return this.admin;
  }

  async createOwner(email, password = 'owner-pass-1') {
    await this.api('POST', '/api/users/', { token: await this.adminToken(), body: { email, password, role: 'business_owner' } });
    return { email, password };
  }

  async createBusiness(name, subdomain, ownerEmail) {
    return this.api('POST', '/api/businesses/', {
      token: await this.adminToken(),
      body: { name, subdomain, owner_email: ownerEmail },
    });
  }

  async book(businessId, customerName, extra = {}) {
    return this.api('POST', `/api/businesses/${businessId}/reservations/`, {
      body: {
        customer_name: customerName,
        customer_email: 'customer@example.com',
        starts_at: new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        service: 'Haircut',
        ...extra,
      },
    });
  }
}

/**
 * Starts a server on a fresh data folder; `dispose()` stops it and removes the folder.
 * `env` is added to the server's environment (e.g. `APP_EVENT_RETENTION`); `addr` replaces
 * the listen address `127.0.0.1:0` (e.g. `0.0.0.0:0`).
 */
export async function startServer(env = {}, { addr } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'app-browser-'));
  const server = new TestServer(dir);
  server.env = { ...env };
  if (addr) server.addr = addr;
  server.dispose = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return server.start();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A unique lower-case suffix for names and subdomains. */
export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
}
