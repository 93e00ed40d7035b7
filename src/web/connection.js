// connection.js — one WebSocket channel that stays connected (the seed's `useWebSocket`).
//
// What it adds to a bare WebSocket, per API.md:
// - reconnects after 1001, 1006, 4008 and any other unexpected close, with exponential
//   backoff and jitter (not a fixed delay), and at once when the browser comes back online;
// - resumes: every reconnect sends `last_event_id` and `epoch`, so the server replays what was
//   missed with no gap and no duplicate; on `resync_required` it asks the app to refetch over REST;
// - never loops on closes that a retry cannot fix: 4401 (token bad or expired), 4403/4404
//   (no access), 1003/1009 (we sent something the server refuses);
// - notices a dead peer: an application ping every 25 s, and a reconnect when nothing at all
//   arrived for 65 s (the server's own WebSocket pings are invisible to page scripts).

/** Close codes with names (API.md). */
export const CLOSE = Object.freeze({
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  TOO_BIG: 1009,
  SLOW_CONSUMER: 4008,
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  /** Ours: the client closes a socket it believes dead, then reconnects. */
  CLIENT_TIMEOUT: 4000,
});

/** Closes after which reconnecting cannot help, and why (the app decides what to show). */
const FINAL_CLOSES = new Map([
  [CLOSE.UNAUTHENTICATED, 'unauthenticated'],
  [CLOSE.FORBIDDEN, 'forbidden'],
  [CLOSE.NOT_FOUND, 'not_found'],
  [CLOSE.UNSUPPORTED_DATA, 'protocol'],
  [CLOSE.TOO_BIG, 'protocol'],
]);

const PING_INTERVAL_MS = 25_000;
const SILENCE_LIMIT_MS = 65_000;

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential growth from `baseMs`,
 * capped at `capMs`, with "equal jitter" — a random point in the upper half of the window —
 * so a server restart is not met by every client at the same instant.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30_000, random = Math.random } = {}) {
  const window = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(window / 2 + random() * (window / 2));
}

/**
 * The statuses a connection reports: `connecting` (first attempt), `live` (the server said
 * `connection_established`), `reconnecting` (lost, retrying with backoff), `offline`
 * (stopped: a final close, or the browser reports no network).
 */
export const STATUS = Object.freeze({
  CONNECTING: 'connecting',
  LIVE: 'live',
  RECONNECTING: 'reconnecting',
  OFFLINE: 'offline',
});

/** Builds the ws:// or wss:// URL of `path` on the page's own origin. */
export function channelUrl(path, params, loc = window.location) {
  const url = new URL(path, loc.href);
  url.protocol = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined) url.searchParams.set(k, String(v));
  }
  return url.toString();
}

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.path channel path, e.g. `/ws/dashboard/`
   * @param {() => string|null} options.getToken the current JWT
   * @param {(frame: object) => void} [options.onEvent] an event frame (it has an integer `id`)
   * @param {(frame: object) => void} [options.onMessage] any other frame (`notifications_read`, `error`, ...)
   * @param {(why: 'initial'|'resync_required', info: object) => void} [options.onResync]
   *   the app must (re)load its state over REST: on the first connection, and on `resync_required`
   * @param {(status: string, detail: object) => void} [options.onStatus]
   * @param {(reason: string, code: number) => void} [options.onStop] a final close (no retry)
   * @param {typeof WebSocket} [options.WebSocketImpl] for tests
   */
  constructor(options) {
    this.options = options;
    this.WebSocketImpl = options.WebSocketImpl || window.WebSocket;
    /** The newest event id applied; sent as `last_event_id` when resuming. */
    this.lastEventId = null;
    /** The event log's epoch, from `connection_established` / `resync_required`. */
    this.epoch = null;
    this.attempt = 0;
    this.status = null;
    this.ws = null;
    this.stopped = true;
    this.timers = { retry: null, ping: null, silence: null };
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.dropForOffline();
  }

  /** Opens the channel (idempotent). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.setStatus(STATUS.CONNECTING, {});
    this.open();
  }

  /** Closes the channel for good (logout, view change). */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close(1000, 'bye');
    }
  }

  /** Sends a client frame (`ping`, `auth`) when connected; returns whether it went out. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Skips the backoff wait (the browser is back online, or the user asked). */
  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState <= 1) return;
    clearTimeout(this.timers.retry);
    this.attempt = 0;
    this.open();
  }

  /**
   * The browser lost the network: a socket that seems open cannot work any more (and may
   * linger until a TCP timeout), so close it and wait, showing Offline; `online` reconnects
   * at once, and the backoff keeps trying meanwhile in case that event never comes.
   */
  dropForOffline() {
    if (this.stopped) return;
    const ws = this.ws;
    if (ws) {
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close(CLOSE.CLIENT_TIMEOUT, 'offline');
    }
    this.clearTimers();
    this.scheduleReconnect(CLOSE.ABNORMAL);
  }

  // --- lifecycle -------------------------------------------------------------------------

  open() {
    this.clearTimers();
    const token = this.options.getToken();
    if (!token) {
      this.finish('unauthenticated', CLOSE.UNAUTHENTICATED);
      return;
    }
    // Resume only from a known position in a known log; otherwise start fresh and refetch.
    const resume = this.lastEventId !== null && this.epoch !== null;
    this.resuming = resume;
    const url = channelUrl(this.options.path, {
      token,
      last_event_id: resume ? this.lastEventId : null,
      epoch: resume ? this.epoch : null,
    });
    let ws;
    try {
      ws = new this.WebSocketImpl(url);
    } catch {
      this.scheduleReconnect(CLOSE.ABNORMAL);
      return;
    }
    this.ws = ws;
    ws.onmessage = (msg) => this.onFrameText(msg.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code);
    ws.onerror = () => {}; // a close event always follows; it decides what to do
    this.armSilenceTimer();
  }

  onFrameText(text) {
    this.armSilenceTimer();
    if (typeof text !== 'string') return;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== 'string') return;
    const { onEvent, onMessage, onResync } = this.options;
    switch (frame.type) {
      case 'connection_established': {
        const p = frame.payload || {};
        this.attempt = 0;
        this.epoch = p.epoch ?? null;
        this.expiresAt = p.expires_at ?? null;
        this.startPing();
        this.setStatus(STATUS.LIVE, { channel: p.channel, user: p.user });
        if (!this.resuming) {
          // Fresh start: everything up to the server's newest id comes from REST. (A resume
          // from a stale position or epoch is answered by `resync_required` instead.)
          this.lastEventId = typeof p.last_event_id === 'number' ? p.last_event_id : null;
          onResync?.('initial', p);
        }
        return;
      }
      case 'resync_required': {
        const p = frame.payload || {};
        this.epoch = p.epoch ?? this.epoch;
        this.lastEventId = typeof p.last_event_id === 'number' ? p.last_event_id : null;
        onResync?.('resync_required', p);
        return;
      }
      case 'pong':
        return;
      default:
        if (Number.isInteger(frame.id)) {
          // The server promises no duplicates; this guard keeps reducers safe regardless.
          if (this.lastEventId !== null && frame.id <= this.lastEventId) return;
          this.lastEventId = frame.id;
          onEvent?.(frame);
        } else {
          onMessage?.(frame);
        }
    }
  }

  onClose(ws, code) {
    if (ws !== this.ws) return; // an old socket we already replaced
    this.ws = null;
    this.clearTimers();
    if (this.stopped) return;
    if (FINAL_CLOSES.has(code)) {
      this.finish(FINAL_CLOSES.get(code), code);
      return;
    }
    this.scheduleReconnect(code);
  }

  scheduleReconnect(code) {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
    this.setStatus(offline ? STATUS.OFFLINE : STATUS.RECONNECTING, {
      code,
      retryAt: Date.now() + delay,
      attempt: this.attempt,
    });
    this.timers.retry = setTimeout(() => this.open(), delay);
  }

  finish(reason, code) {
    this.stop();
    this.setStatus(STATUS.OFFLINE, { reason, code });
    this.options.onStop?.(reason, code);
  }

  // --- liveness --------------------------------------------------------------------------

  startPing() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => this.send({ type: 'ping' }), PING_INTERVAL_MS);
  }

  armSilenceTimer() {
    clearTimeout(this.timers.silence);
    this.timers.silence = setTimeout(() => {
      // No frame (not even a pong) for too long: the socket is dead without knowing it.
      const ws = this.ws;
      if (!ws) return;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close(CLOSE.CLIENT_TIMEOUT, 'silent peer');
      this.clearTimers();
      this.scheduleReconnect(CLOSE.CLIENT_TIMEOUT);
    }, SILENCE_LIMIT_MS);
  }

  clearTimers() {
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.silence);
  }

  setStatus(status, detail) {
    this.status = status;
    this.options.onStatus?.(status, detail);
  }
}
