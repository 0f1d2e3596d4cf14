/**
 * The user's vault key in the browser: enrol, unlock, keep, forget.
 *
 * Where the unlocked key lives (a deliberate choice): the private key is
 * imported as a NON-extractable CryptoKey, kept in memory and persisted in
 * IndexedDB so the other vault pages (Session Activity, the players) can use
 * it without asking for the passphrase again. Script cannot read its bytes
 * (WebCrypto refuses to export it), only use it. It is bound to the browser
 * session: the entry carries a random tag that must match a session cookie
 * (no expiry, so the browser drops it on exit); a stale entry is deleted on
 * sight. Signing in, signing out and "Lock" delete it too. The passphrase
 * itself is never sent, stored, or kept after the unlock.
 *
 * @module app/keyring
 */

import * as ksr1 from "ksr1";
import { api, apiAll, ApiError } from "./api.js";
import { grantsProcess } from "./grants.js";

const DB_NAME = "keeperpam-vault";
const STORE = "keys";
const SESSION_COOKIE = "kp_vault_session";
const FLASH = "kp-flash";

/** @type {Map<string, ksr1.UserKey>} unlocked keys of this page, by user id */
const memory = new Map();
/** @type {Map<string, Promise<ksr1.RecordKey>>} opened record keys, by record key id */
const recordKeyCache = new Map();

function dbOpen() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function dbDo(mode, fn) {
  const db = await dbOpen();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request?.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

function sessionTag({ create = false } = {}) {
  const match = document.cookie.match(new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([^;]+)`));
  if (match) return match[1];
  if (!create) return null;
  const tag = ksr1.b64uEncode(crypto.getRandomValues(new Uint8Array(16)));
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${SESSION_COOKIE}=${tag}; Path=/; SameSite=Strict${secure}`;
  return tag;
}

/** The user id of the signed-in user, as FORMAT.md §6 binds it (str of the API id). */
export function currentUserId() {
  return document.body.dataset.userId ?? null;
}

/** Forget every unlocked key in this browser (lock, sign out, sign in). */
export async function keyringClear() {
  memory.clear();
  recordKeyCache.clear();
  document.cookie = `${SESSION_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict`;
  try {
    await dbDo("readwrite", (store) => store.clear());
  } catch { /* no IndexedDB (private mode): nothing was kept */ }
}

async function keyringKeep(userId, userKey) {
  memory.set(userId, userKey);
  recordKeyCache.clear();
  const session = sessionTag({ create: true });
  try {
    await dbDo("readwrite", (store) => store.put(
      { session, userId, kid: userKey.kid, keyPair: userKey.keyPair, unlockedAt: Date.now() }, userId));
  } catch { /* no IndexedDB: the key stays on this page only */ }
}

/**
 * The unlocked key of `userId` in this browser session, or null.
 * @param {string} [userId] defaults to the signed-in user
 * @returns {Promise<ksr1.UserKey|null>}
 */
export async function keyringLoad(userId = currentUserId()) {
  if (!userId) return null;
  if (memory.has(userId)) return memory.get(userId);
  let entry;
  try {
    entry = await dbDo("readonly", (store) => store.get(userId));
  } catch {
    return null;
  }
  if (!entry) return null;
  if (!entry.session || entry.session !== sessionTag()) {
    // Left over from an earlier browser session: never reuse it.
    await dbDo("readwrite", (store) => store.delete(userId)).catch(() => {});
    return null;
  }
  const userKey = { kid: entry.kid, keyPair: entry.keyPair };
  memory.set(userId, userKey);
  return userKey;
}

/**
 * The unlocked key, or a redirect to the unlock page (which comes back here).
 * @returns {Promise<{userId: string, userKey: ksr1.UserKey}>} never resolves when redirecting
 */
export async function requireUnlocked() {
  const userId = currentUserId();
  const userKey = await keyringLoad(userId);
  if (userKey) return { userId, userKey };
  const next = window.location.pathname + window.location.search;
  window.location.replace(`/unlock/?next=${encodeURIComponent(next)}`);
  return new Promise(() => {});
}

/**
 * Open the record key with id `recordKid` of record `recordId` from the caller's share.
 * @param {number|string} recordId
 * @param {string} recordKid
 * @param {{userId: string, userKey: ksr1.UserKey}} who
 * @returns {Promise<ksr1.RecordKey>}
 * @throws {ApiError} 404 without the right to view the record's recordings
 * @throws {ksr1.KeyAccessError} when no share of that key was granted yet
 */
export function recordKeyOpen(recordId, recordKid, { userId, userKey }) {
  if (!recordKeyCache.has(recordKid)) {
    const opening = (async () => {
      const shares = await apiAll(`/api/v1/records/${recordId}/key-shares/`);
      const mine = shares.find((s) => s.record_key_id === recordKid);
      if (!mine) {
        throw new ksr1.KeyAccessError(
          "You have not been granted this recording's key yet. It is granted automatically the next time "
          + "another authorised user unlocks their vault.");
      }
      return ksr1.recordKeyShareOpen({ share: mine.share, recordKid, userId, userKey });
    })();
    opening.catch(() => recordKeyCache.delete(recordKid));
    recordKeyCache.set(recordKid, opening);
  }
  return recordKeyCache.get(recordKid);
}

/** Show a one-line notice on the next page. */
export function flashNext(message) {
  sessionStorage.setItem(FLASH, message);
}

/** Show the pending notice, if any, in the page's #flash. */
export function flashShow() {
  const message = sessionStorage.getItem(FLASH);
  const box = document.getElementById("flash");
  if (!message || !box) return;
  sessionStorage.removeItem(FLASH);
  box.textContent = message;
  box.hidden = false;
  setTimeout(() => box.classList.add("fade"), 6000);
}

/** Top bar: the vault's lock state, the Lock button, and forgetting keys on sign-out. */
export async function keyringChrome() {
  const state = document.getElementById("vault-state");
  const lock = document.getElementById("vault-lock");
  const signout = document.getElementById("signout");
  signout?.addEventListener("submit", async (event) => {
    if (signout.dataset.cleared) return;
    event.preventDefault();
    await keyringClear();
    signout.dataset.cleared = "1";
    signout.submit();
  });
  if (document.body.classList.contains("auth-page")) return;
  if (await keyringLoad()) {
    state.hidden = false;
    lock.hidden = false;
    lock.addEventListener("click", async () => {
      await keyringClear();
      window.location.assign(`/unlock/?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
    });
  }
  flashShow();
}

async function processGrants(who, progressText) {
  progressText.textContent = "Checking for users waiting for access…";
  try {
    const { users } = await grantsProcess(who);
    if (users > 0) flashNext(`Granted access to ${users} user${users === 1 ? "" : "s"}.`);
  } catch (e) {
    // Granting is a courtesy to others: never block this user's unlock on it.
    console.warn("pending grants not processed:", e);
  }
}

function show(el, on = true) { el.hidden = !on; }

/**
 * A rough passphrase strength: 0 (weak) to 4 (strong), with a hint.
 * @param {string} text
 * @returns {{score: number, hint: string}}
 */
export function passphraseStrength(text) {
  if (text.length < 12) return { score: text ? 1 : 0, hint: `Use at least 12 characters (${text.length} so far).` };
  let score = 1;
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(text)).length;
  if (text.length >= 16) score += 1;
  if (text.length >= 24 || classes >= 3) score += 1;
  if (new Set(text).size >= 10 && !/(.)\1{3,}/.test(text) && !/(password|123456|qwerty|letmein)/i.test(text)) score += 1;
  const hints = ["", "Weak: add more words or characters.", "Fair: a longer passphrase is better.",
    "Good.", "Strong passphrase."];
  return { score, hint: hints[score] };
}

/** The enrol page: choose a passphrase, make and protect the key pair, store it. */
export function enrolPage({ userId, next }) {
  const form = document.getElementById("enrol-form");
  const first = document.getElementById("passphrase");
  const second = document.getElementById("passphrase2");
  const meter = document.getElementById("strength");
  const hint = document.getElementById("strength-hint");
  const error = document.getElementById("enrol-error");
  const submit = document.getElementById("enrol-submit");
  const progress = document.getElementById("enrol-progress");
  const progressText = document.getElementById("enrol-progress-text");
  first.addEventListener("input", () => {
    const { score, hint: text } = passphraseStrength(first.value);
    meter.dataset.score = String(score);
    hint.textContent = text;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(error, false);
    const passphrase = first.value;
    const fail = (message) => { error.textContent = message; show(error); };
    if (passphrase.length < 12) return fail("Choose a passphrase of at least 12 characters.");
    if (passphrase !== second.value) return fail("The two passphrases are not the same.");
    submit.disabled = true;
    show(progress);
    try {
      progressText.textContent = "Generating your key pair…";
      const keyPair = await ksr1.keyPairGenerate();
      progressText.textContent = "Protecting it with your passphrase (1,000,000 PBKDF2 rounds)…";
      const protectedKey = await ksr1.privateKeyProtect({
        privateKey: keyPair.privateKey, passphrase, userId, iterations: ksr1.PBKDF2_MIN_ITERATIONS,
      });
      progressText.textContent = "Saving your public key…";
      const spki = await ksr1.spkiOf(keyPair.publicKey);
      await api("/api/v1/me/key/", {
        method: "PUT", body: { public_key: ksr1.b64uEncode(spki), protected_private_key: protectedKey },
      });
      // Keep a non-extractable copy: the extractable one goes out of scope here.
      const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
      const pair = await ksr1.privateKeyImport(pkcs8, false);
      pkcs8.fill(0);
      const userKey = { kid: await ksr1.keyId(pair.publicKey), keyPair: pair };
      await keyringKeep(userId, userKey);
      first.value = second.value = "";
      await processGrants({ userId, userKey }, progressText);
      flashNext(sessionStorage.getItem(FLASH) ?? "Your vault key is ready. Keep your passphrase safe.");
      window.location.assign(next || "/");
    } catch (e) {
      show(progress, false);
      submit.disabled = false;
      fail(e instanceof ApiError ? `The vault refused the key: ${e.detail}` : `Could not create your key: ${e.message}`);
    }
  });
}

/** The unlock page: passphrase → unlocked key (wrong passphrase: a clear error). */
export function unlockPage({ userId, next }) {
  const form = document.getElementById("unlock-form");
  const input = document.getElementById("passphrase");
  const error = document.getElementById("unlock-error");
  const submit = document.getElementById("unlock-submit");
  const progress = document.getElementById("unlock-progress");
  const progressText = document.getElementById("unlock-progress-text");
  const protectedKey = api("/api/v1/me/key/");
  protectedKey.catch(() => {});
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(error, false);
    submit.disabled = true;
    progressText.textContent = "Deriving your key (1,000,000 PBKDF2 rounds)…";
    show(progress);
    try {
      const enrolled = await protectedKey;
      let userKey;
      try {
        userKey = await ksr1.privateKeyUnlock({ protectedKey: enrolled.protected_private_key, passphrase: input.value, userId });
      } catch (e) {
        if (e instanceof ksr1.WrongPassphrase) {
          throw new Error("Wrong vault passphrase. Check it (it is case-sensitive) and try again.");
        }
        throw e;
      }
      if (enrolled.key_id && userKey.kid !== enrolled.key_id) {
        throw new Error("This key does not match the public key the vault holds for you. Contact your administrator.");
      }
      input.value = "";
      await keyringKeep(userId, userKey);
      await processGrants({ userId, userKey }, progressText);
      window.location.assign(next || "/");
    } catch (e) {
      show(progress, false);
      submit.disabled = false;
      error.textContent = e instanceof ApiError ? `The vault could not be reached: ${e.detail}` : e.message;
      show(error);
      input.select();
    }
  });
}
