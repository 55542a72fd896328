// The dashboard's API client: one object that knows the base path and the credentials, so the
// components that use it (the events viewer above all) never hard-code either.
//
// The operator dashboard uses `createApi()` as is: `/dashboard/api`, the session cookie and the
// session's CSRF token on every state-changing request. The Admin Portal or an embeddable viewer
// pass another `basePath` and `headers` (for example a viewer token) instead.

/** An error answer of the server: `{"message", "code", "errors"?}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    const message =
      (body && typeof body.message === 'string' && body.message) ||
      (status === 0 ? 'The server could not be reached.' : `The server answered ${status}.`);
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = (body && body.code) || null;
    this.errors = Array.isArray(body && body.errors) ? body.errors : [];
    this.body = body ?? null;
  }

  /** One readable line per field error (`field: message`, or `instancePath: message`). */
  fieldMessages() {
    return this.errors.map((error) => {
      const where = error.field ?? error.instancePath ?? '';
      const what = error.message ?? error.code ?? '';
      return where ? `${where}: ${what}` : String(what);
    });
  }
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Builds a query string. Arrays repeat the parameter (`actions=a&actions=b`), empty values
 * (undefined, null, '' and empty arrays) are left out.
 */
export function queryString(query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) {
      for (const item of value) {
        if (item !== undefined && item !== null && item !== '') params.append(name, String(item));
      }
    } else {
      params.append(name, String(value));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/**
 * Creates an API client.
 *
 * @param {object} [options]
 * @param {string} [options.basePath='/dashboard/api'] prefix of every path
 * @param {() => Record<string,string>} [options.headers] extra headers for every request
 *   (an embedded viewer puts its `Authorization` here)
 * @param {boolean} [options.csrf=true] send the session's CSRF token on state-changing requests
 * @param {RequestCredentials} [options.credentials='same-origin'] whether cookies go along
 *   (an embedded viewer, which authenticates with its token only, sends 'omit')
 * @param {(error: ApiError) => void} [options.onUnauthorized] called on a 401 `not_signed_in`
 * @param {typeof fetch} [options.fetch] the fetch function (tests may inject one)
 */
export function createApi(options = {}) {
  const basePath = (options.basePath ?? '/dashboard/api').replace(/\/+$/, '');
  const extraHeaders = options.headers ?? (() => ({}));
  const useCsrf = options.csrf ?? true;
  const fetchFn = options.fetch ?? ((...args) => globalThis.fetch(...args));
  let csrfToken = null;

  /**
   * Sends one request and answers `{status, data, headers}`; `data` is parsed JSON, or text
   * when the answer is not JSON. Throws ApiError for any answer that is not 2xx.
   */
  async function send(method, path, { query, body, signal, retried = false } = {}) {
    const upper = method.toUpperCase();
    const headers = { Accept: 'application/json, text/plain;q=0.9', ...extraHeaders() };
    const init = { method: upper, headers, credentials: options.credentials ?? 'same-origin', signal, cache: 'no-store' };
    if (STATE_CHANGING.has(upper)) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body ?? {});
      if (useCsrf && csrfToken) headers['X-CSRF-Token'] = csrfToken;
    }
    let response;
    try {
      response = await fetchFn(`${basePath}${path}${queryString(query)}`, init);
    } catch (cause) {
      if (cause && cause.name === 'AbortError') throw cause;
      throw new ApiError(0, { message: 'The server could not be reached. Check your connection and retry.' });
    }
    const type = response.headers.get('content-type') ?? '';
    let data = null;
    if (response.status !== 204) {
      const text = await response.text();
      if (type.includes('json')) {
        try {
          data = text ? JSON.parse(text) : null;
        } catch {
          data = { message: `The server sent malformed JSON (HTTP ${response.status}).` };
        }
      } else {
        data = text;
      }
    }
    if (!response.ok && response.status === 403 && useCsrf && !retried && STATE_CHANGING.has(upper)) {
      // The session's CSRF token changed (signed in again in another tab): take the current
      // one and retry once.
      const body403 = data && typeof data === 'object' ? data : {};
      if (body403.code === 'invalid_csrf_token') {
        try {
          const session = await get('/session');
          if (session && session.csrf_token && session.csrf_token !== csrfToken) {
            csrfToken = session.csrf_token;
            return send(method, path, { query, body, signal, retried: true });
          }
        } catch {
          // fall through to the original error
        }
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data && typeof data === 'object' ? data : { message: typeof data === 'string' && data.length < 300 && data.trim() ? data.trim() : undefined });
      if (response.status === 401 && options.onUnauthorized && error.code !== 'invalid_credentials') {
        options.onUnauthorized(error);
      }
      throw error;
    }
    return { status: response.status, data, headers: response.headers };
  }

  const get = async (path, query, init) => (await send('GET', path, { ...init, query })).data;
  const post = async (path, body) => (await send('POST', path, { body })).data;
  const put = async (path, body) => (await send('PUT', path, { body })).data;
  const enc = encodeURIComponent;

  return {
    basePath,
    send,
    get,
    post,
    put,
    setCsrfToken(token) {
      csrfToken = token || null;
    },

    // Session (dashboard only).
    getSession: () => get('/session'),
    async signIn(email, password) {
      const session = await post('/session', { email, password });
      csrfToken = session.csrf_token;
      return session;
    },
    async signOut() {
      const answer = (await send('DELETE', '/session', { body: {} })).data;
      csrfToken = null;
      return answer;
    },

    // Organizations.
    listOrganizations: (query) => get('/organizations', query),
    getOrganization: (id) => get(`/organizations/${enc(id)}`),
    createOrganization: (body) => post('/organizations', body),
    updateOrganization: (id, body) => put(`/organizations/${enc(id)}`, body),
    getRetention: (id) => get(`/organizations/${enc(id)}/audit_logs_retention`),
    setRetention: (id, days) => put(`/organizations/${enc(id)}/audit_logs_retention`, { retention_period_in_days: days }),
    getLegalHold: (id) => get(`/organizations/${enc(id)}/audit_logs_legal_hold`),
    setLegalHold: (id, held, reason) =>
      put(`/organizations/${enc(id)}/audit_logs_legal_hold`, reason ? { legal_hold: held, reason } : { legal_hold: held }),
    /** Erases one person's data from the organization's trail (`actor_id`, optional `target_id`). */
    erase: (id, actorId, targetId) =>
      post('/audit_logs/erasures', targetId ? { organization_id: id, actor_id: actorId, target_id: targetId } : { organization_id: id, actor_id: actorId }),
    /** The retention in force (the server's default when the organization set none). */
    getAuditLogConfiguration: (id) => get(`/organizations/${enc(id)}/audit_log_configuration`),

    // Schemas.
    listActions: (query) => get('/audit_logs/actions', query),
    listSchemas: (action, query) => get(`/audit_logs/actions/${enc(action)}/schemas`, query),
    /**
     * Answers `{created, schema}`: created is false when the definition equals the latest.
     * The server answers 201 either way (as WorkOS's spec says), with the latest version when
     * nothing was created, so the version is compared with the latest one before the request.
     */
    async createSchema(action, definition) {
      let latestBefore = 0;
      try {
        const page = await get(`/audit_logs/actions/${enc(action)}/schemas`, { limit: 1 });
        latestBefore = page.data.length ? page.data[0].version : 0;
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 404) throw error;
      }
      const schema = await post(`/audit_logs/actions/${enc(action)}/schemas`, definition);
      return { created: schema.version > latestBefore, schema };
    },

    // Events (read only) and the verifiable log: what the events viewer needs.
    listEvents: (query, init) => get('/audit_logs/events', query, init),
    getEvent: (id) => get(`/audit_logs/events/${enc(id)}`),
    logCheckpoint: (organizationId) => get('/audit_logs/log/checkpoint', { organization_id: organizationId }),
    logPublicKey: () => get('/audit_logs/log/public_key'),
    inclusionProof: (organizationId, eventId, treeSize) =>
      get('/audit_logs/log/proof/inclusion', { organization_id: organizationId, event_id: eventId, tree_size: treeSize }),
    /**
     * Follows new events (the live tail, server-sent events) until `signal` aborts or the
     * server ends the stream; resolves then. `query` takes the listing's filters;
     * `lastEventId` resumes after that log index. Calls `onOpen()` once the server accepted,
     * and `onEvent(event)` for each event. Throws ApiError if the server refuses.
     */
    followEvents: async (query, { signal, lastEventId = null, onOpen, onEvent }) => {
      const headers = { Accept: 'text/event-stream', ...extraHeaders() };
      if (lastEventId !== null && lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
      let response;
      try {
        response = await fetchFn(`${basePath}/audit_logs/events/stream${queryString(query)}`, {
          headers,
          credentials: options.credentials ?? 'same-origin',
          signal,
          cache: 'no-store',
        });
      } catch (cause) {
        if (cause && cause.name === 'AbortError') return;
        throw new ApiError(0, { message: 'The server could not be reached.' });
      }
      if (!response.ok) {
        let data = {};
        try {
          data = await response.json();
        } catch {
          // not JSON: the status says enough
        }
        const error = new ApiError(response.status, data);
        if (response.status === 401 && options.onUnauthorized) options.onUnauthorized(error);
        throw error;
      }
      if (onOpen) onOpen();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block
              .split('\n')
              .filter((line) => line.startsWith('data:'))
              .map((line) => line.slice(5).replace(/^ /, ''))
              .join('\n');
            if (data && onEvent) onEvent(JSON.parse(data));
          }
        }
      } catch (cause) {
        if (cause && cause.name === 'AbortError') return;
        throw new ApiError(0, { message: 'The connection to the server was lost.' });
      }
    },
    logEntries: (organizationId, start, end, init) =>
      get('/audit_logs/log/entries', { organization_id: organizationId, start, end }, init),

    // Log streams.
    listStreams: (organizationId) => get('/audit_logs/streams', { organization_id: organizationId }),
    createStream: (body) => post('/audit_logs/streams', body),
    updateStream: (id, body) => put(`/audit_logs/streams/${enc(id)}`, body),
    deleteStream: async (id) => (await send('DELETE', `/audit_logs/streams/${enc(id)}`, { body: {} })).data,
    replayStream: (id, body) => post(`/audit_logs/streams/${enc(id)}/replay`, body),
    /** Sends a test event now: `{success, message}`; the stream itself does not change. */
    testStream: (id) => post(`/audit_logs/streams/${enc(id)}/test`, {}),

    // Exports.
    createExport: (body) => post('/audit_logs/exports', body),
    getExport: (id) => get(`/audit_logs/exports/${enc(id)}`),

    // API keys and health (dashboard only).
    listApiKeys: () => get('/api_keys'),
    createApiKey: (name) => post('/api_keys', { name }),
    revokeApiKey: (id) => post(`/api_keys/${enc(id)}/revoke`, {}),
    health: () => get('/health'),
  };
}
