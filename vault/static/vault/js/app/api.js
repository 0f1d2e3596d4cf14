/**
 * The vault UI's only door to data: the public API (/api/v1/) with the
 * session cookie and Django's CSRF token. Errors come back as ApiError with
 * the server's JSON message ({"detail", "errors"}).
 * @module app/api
 */

/** An API answer other than 2xx. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status
   * @param {string} detail the server's message
   * @param {object} [errors] field errors of a 400
   */
  constructor(status, detail, errors = {}) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.errors = errors;
  }
}

/** Django's CSRF token: the page's meta tag, else the csrftoken cookie. */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]')?.content;
  if (meta && meta !== "NOTPROVIDED") return meta;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/**
 * Call the API.
 * @param {string} path "/api/v1/…" or an absolute URL the API gave
 * @param {object} [options]
 * @param {string} [options.method] GET unless told
 * @param {object} [options.body] sent as JSON
 * @param {object} [options.query] query parameters (empty values dropped)
 * @param {"json"|"bytes"} [options.as] what to return
 * @param {AbortSignal} [options.signal]
 * @returns {Promise<any>} the JSON body (null for 204), or a Uint8Array
 * @throws {ApiError}
 */
export async function api(path, { method = "GET", body, query, as = "json", signal } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  // Part bytes come from a DRF view whose renderers are JSON ones: ask for anything.
  const headers = { Accept: as === "json" ? "application/json" : "*/*" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", signal, cache: "no-store",
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "The vault server cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    let errors = {};
    try {
      const data = await response.json();
      detail = data.detail ?? detail;
      errors = data.errors ?? {};
    } catch { /* not JSON: keep the status line */ }
    if (response.status === 401 || response.status === 403) {
      // The session ended (signed out elsewhere, expired): go through sign-in again.
      if (detail.includes("credentials were not provided")) {
        window.location.assign(`/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`);
      }
    }
    throw new ApiError(response.status, detail, errors);
  }
  if (as === "bytes") return new Uint8Array(await response.arrayBuffer());
  if (response.status === 204) return null;
  return response.json();
}

/**
 * Every row of a paginated list (follows `next`). Accepts unpaginated lists too.
 * @param {string} path
 * @param {object} [query]
 * @returns {Promise<any[]>}
 */
export async function apiAll(path, query) {
  const rows = [];
  let page = await api(path, { query: { page_size: 200, ...query } });
  for (;;) {
    if (Array.isArray(page)) return rows.concat(page);
    rows.push(...page.results);
    if (!page.next) return rows;
    page = await api(page.next);
  }
}
