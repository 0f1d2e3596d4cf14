/**
 * Sealed parts of one stream, fetched by time and opened in the browser.
 *
 * The list of parts (seq, t0, t1, final, kf, size, url) comes from
 * `GET /api/v1/sessions/{id}/streams/{stream}/parts/`; a player asks for the
 * part that covers a time and gets it verified (signature, identity, and the
 * `prev` chain when it follows the part before) and decrypted by ksr1's
 * `partOpen`. Only the parts a player asks for are fetched; a small LRU keeps
 * the last few opened so scrubbing back and forth does not refetch.
 *
 * A part that fails any check is remembered as tampered and its plaintext is
 * never returned: `open()` rethrows the same error every time.
 * @module players/parts
 */

import { partOpen, signersImport } from "ksr1";

const PAGE_SIZE = 200;

/**
 * GET a JSON API resource with the session cookie.
 * @param {string} url
 * @returns {Promise<any>}
 */
export async function apiGet(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    const error = new Error(`${url}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

/**
 * Every row of a paginated list (DRF page-number pagination, or a bare list).
 * @param {string} url
 * @returns {Promise<any[]>}
 */
export async function apiGetAll(url) {
  const rows = [];
  let next = url;
  while (next) {
    const page = await apiGet(next);
    if (Array.isArray(page)) return page;
    rows.push(...page.results);
    next = page.next;
  }
  return rows;
}

/** Trusted sealer keys from /api/v1/signers/, as ksr1 wants them. */
export async function trustedSigners() {
  const rows = await apiGetAll("/api/v1/signers/?page_size=200");
  return signersImport(rows.map((row) => row.public_key));
}

/** A tiny least-recently-used map. */
class Lru {
  constructor(limit) {
    this.limit = limit;
    this.map = new Map();
  }

  get(key) {
    if (!this.map.has(key)) return undefined;
    const value = this.map.get(key);
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  set(key, value) {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value);
  }
}

/**
 * The parts of one stream of one session.
 */
export class PartSource {
  /**
   * @param {object} p
   * @param {string} p.session session UUID
   * @param {string} p.stream "terminal" or "guac"
   * @param {string} p.recording recording UUID (bound into every part's header)
   * @param {Map<string, CryptoKey>} p.signers from `trustedSigners()`
   * @param {import("ksr1").RecordKey[]} p.recordKeys the record keys the user holds
   * @param {number} [p.cacheSize] opened parts kept in memory
   */
  constructor({ session, stream, recording, signers, recordKeys, cacheSize = 6 }) {
    this.session = session;
    this.stream = stream;
    this.recording = recording;
    this.signers = signers;
    this.recordKeys = recordKeys;
    /** @type {{seq:number,t0:number,t1:number,final:boolean,kf:number,size:number,url:string}[]} */
    this.parts = [];
    this.cache = new Lru(cacheSize);
    /** seq → the error a part failed with (tampered parts stay failed) */
    this.failed = new Map();
    /** seq → hex SHA-256 of the part, once opened (the next part's `prev`) */
    this.hashes = new Map();
    this.bytesFetched = 0;
    this.partsFetched = 0;
    this.inflight = new Map();
  }

  get listUrl() {
    return `/api/v1/sessions/${this.session}/streams/${this.stream}/parts/`;
  }

  /**
   * Fetch the part rows not known yet (the whole list the first time; later
   * only from the page holding the first unknown seq — live sessions).
   * @returns {Promise<number>} how many new parts appeared
   */
  async refresh() {
    const known = this.parts.length;
    const page = Math.floor(known / PAGE_SIZE) + 1;
    const rows = await apiGetAll(`${this.listUrl}?page_size=${PAGE_SIZE}&page=${page}`);
    const fresh = rows.filter((row) => row.seq >= known).sort((a, b) => a.seq - b.seq);
    for (const row of fresh) {
      if (row.seq !== this.parts.length) break; // a gap: wait for the list to catch up
      this.parts.push(row);
    }
    return this.parts.length - known;
  }

  /** Session time covered so far (ms): the last part's t1. */
  get duration() {
    return this.parts.length ? this.parts[this.parts.length - 1].t1 : 0;
  }

  /** Whether the last part is the stream's final one. */
  get complete() {
    return this.parts.length > 0 && this.parts[this.parts.length - 1].final;
  }

  /**
   * Index of the part to start from to show time `t`: the last part whose t0 ≤ t.
   * @param {number} t ms
   * @returns {number}
   */
  indexAt(t) {
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.parts[mid].t0 <= t) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(0, lo);
  }

  /**
   * Fetch, verify and decrypt part `index`. With `chained`, the part must
   * follow the one before it (`prev` = its hash), which must have been
   * opened already; otherwise it is opened alone (a seek).
   * @param {number} index
   * @param {{chained?: boolean}} [options]
   * @returns {Promise<import("ksr1").OpenedPart>}
   * @throws {import("ksr1").TamperedPart} never with plaintext
   */
  async open(index, { chained = false } = {}) {
    const row = this.parts[index];
    if (!row) throw new RangeError(`no part ${index}`);
    if (this.failed.has(row.seq)) throw this.failed.get(row.seq);
    const cached = this.cache.get(row.seq);
    if (cached && !(chained && row.seq > 0 && this.hashes.has(row.seq - 1) && cached.header.prev !== this.hashes.get(row.seq - 1))) {
      return cached;
    }
    const key = `${row.seq}:${chained}`;
    if (!this.inflight.has(key)) {
      this.inflight.set(key, this.#fetchOpen(row, chained).finally(() => this.inflight.delete(key)));
    }
    return this.inflight.get(key);
  }

  async #fetchOpen(row, chained) {
    const response = await fetch(row.url, { credentials: "same-origin" });
    if (!response.ok) {
      const error = new Error(`part ${row.seq}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    this.bytesFetched += bytes.length;
    this.partsFetched += 1;
    const prev = chained && row.seq > 0 ? this.hashes.get(row.seq - 1) : undefined;
    let opened;
    let lastError;
    // A user may hold several record key versions; the part names its recipient kids.
    for (const recordKey of this.recordKeys) {
      try {
        opened = await partOpen({
          bytes, recording: this.recording, stream: this.stream, seq: row.seq, prev, signers: this.signers, recordKey,
        });
        break;
      } catch (e) {
        lastError = e;
        if (e.tampered) break;
      }
    }
    if (!opened) {
      if (lastError?.tampered) this.failed.set(row.seq, lastError);
      throw lastError ?? new Error("no record key to open this recording");
    }
    // The list said one thing, the signed header another: trust only the header.
    if (opened.header.t0 !== row.t0 || opened.header.t1 !== row.t1 || opened.header.final !== row.final) {
      row.t0 = opened.header.t0;
      row.t1 = opened.header.t1;
      row.final = opened.header.final;
      row.kf = opened.header.kf;
    }
    this.hashes.set(row.seq, opened.hash);
    this.cache.set(row.seq, opened);
    return opened;
  }
}
