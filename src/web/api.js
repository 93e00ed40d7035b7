// api.js — the REST client: a fetch wrapper that speaks API.md's JSON and error shape.
//
// Every failure becomes an ApiError carrying the HTTP status, the error `code`, the human
// `message` and, for validation errors, the per-field messages (`fields`) the forms show.

/** An error answered by the server (or a network failure, with status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} code API.md's snake_case code (`validation_error`, `conflict`, ...)
   * @param {string} message for a human
   * @param {Record<string,string>} [fields] what is wrong with each field
   * @param {number|null} [retryAfter] seconds, from `Retry-After` on 429
   */
  constructor(status, code, message, fields = {}, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = fields || {};
    this.retryAfter = retryAfter;
  }
}

/**
 * How long signing out may wait for the server. A refresh gets no such limit: abandoning one
 * the server then completes would lose the rotated token, and presenting the old one again
 * revokes the whole login (API.md, reuse detection).
 */
const LOGOUT_TIMEOUT_MS = 10_000;

/**
 * Creates a client.
 * @param {{ getToken?: () => string|null, renew?: (stale: string) => Promise<string|null>,
 *   onUnauthorized?: (err: ApiError) => void }} options
 *   A call that sent a token and got 401 asks `renew` for a newer token and is retried once
 *   with it; `onUnauthorized` runs when there is none or the retry is refused too (the app
 *   returns to the login form).
 */
export function createApi({ getToken = () => null, renew = async () => null, onUnauthorized = () => {} } = {}) {
  /** `auth: false` sends no token (signing in), so a 401 there means wrong credentials. */
  async function request(method, path, body, { auth = true, retried = false, timeoutMs } = {}) {
    const headers = { Accept: 'application/json' };
    const token = auth ? getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
      });
    } catch {
      throw new ApiError(0, 'network', 'The server could not be reached. Check your connection and try again.');
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (res.ok) return data;
    const e = (data && data.error) || {};
    const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    const err = new ApiError(
      res.status,
      e.code || `http_${res.status}`,
      e.message || `The server answered ${res.status}.`,
      e.fields,
      Number.isFinite(retry) ? retry : null,
    );
    if (res.status === 401 && token) {
      // Expired (a laptop that slept past the renewal) or revoked: one renewal, one retry.
      const fresh = retried ? null : await renew(token);
      if (fresh) return request(method, path, body, { auth, retried: true });
      onUnauthorized(err);
    }
    throw err;
  }

  const enc = encodeURIComponent;
  return {
    request,
    login: (email, password) => request('POST', '/api/auth/token/', { email, password }, { auth: false }),
    refresh: (refresh) =>
      request('POST', '/api/auth/refresh/', { refresh }, { auth: false }),
    logout: (refresh) =>
      request('POST', '/api/auth/logout/', { refresh }, { auth: false, timeoutMs: LOGOUT_TIMEOUT_MS }),
    me: () => request('GET', '/api/users/me/'),
    createUser: (body) => request('POST', '/api/users/', body),
    dashboard: () => request('GET', '/api/dashboard/'),
    /** Without `before`: the last 50 (API.md); with it: a page further back (`next_before`). */
    activity: (type, { before, limit } = {}) => {
      const query = new URLSearchParams();
      if (type) query.set('type', type);
      if (before !== undefined && before !== null) query.set('before', String(before));
      if (limit) query.set('limit', String(limit));
      const text = query.toString();
      return request('GET', `/api/activity/${text ? `?${text}` : ''}`);
    },
    notifications: () => request('GET', '/api/notifications/'),
    markRead: (upTo) => request('POST', '/api/notifications/read/', { up_to: upTo }),
    businesses: ({ limit = 100, cursor } = {}) =>
      request('GET', `/api/businesses/?limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ''}`),
    business: (id) => request('GET', `/api/businesses/${enc(id)}/`),
    createBusiness: (body) => request('POST', '/api/businesses/', body),
    updateBusiness: (id, body) => request('PATCH', `/api/businesses/${enc(id)}/`, body),
    deleteBusiness: (id) => request('DELETE', `/api/businesses/${enc(id)}/`),
    /** `upcoming`: only confirmed ones from now on, soonest first (API.md). */
    reservations: (id, { limit = 100, cursor, upcoming = false } = {}) =>
      request(
        'GET',
        `/api/businesses/${enc(id)}/reservations/?limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ''}${upcoming ? '&upcoming=true' : ''}`,
      ),
    cancelReservation: (id, rid) =>
      request('POST', `/api/businesses/${enc(id)}/reservations/${enc(rid)}/cancel/`),
    publicBusiness: (subdomain) => request('GET', `/api/public/businesses/${enc(subdomain)}/`),
    book: (id, body) => request('POST', `/api/businesses/${enc(id)}/reservations/`, body),
  };
}
