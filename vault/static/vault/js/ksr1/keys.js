/**
 * Keys held for users (FORMAT.md §6): user key pairs, their passphrase
 * protection, record key shares and granting a record key to another user.
 * All keys are ECDH P-256 CryptoKeys; HPKE is @hpke/core with the suite of
 * format.js.
 * @module ksr1/keys
 */

import { b64uDecode, b64uEncode, concatBytes, utf8 } from "./b64u.js";
import { BadKeyShare, MalformedKey, WeakKeyProtection, WrongPassphrase } from "./errors.js";
import { hpkeSuite, recordKeyId } from "./format.js";

export const PBKDF2_MIN_ITERATIONS = 1000000;
/** A hostile server must not make a client spin for hours by raising the count. */
export const PBKDF2_MAX_ITERATIONS = 10000000;
const EC = { name: "ECDH", namedCurve: "P-256" };
const SHARE_MIN = 65 + 16; // a share is longer than its encapsulated key and AEAD tag

/**
 * Key id of a user or record public key: hex SHA-256 of its DER
 * SubjectPublicKeyInfo.
 * @type {(publicKey: CryptoKey|Uint8Array) => Promise<string>}
 */
export const keyId = recordKeyId;

/**
 * DER SPKI of a public key.
 * @param {CryptoKey|Uint8Array} publicKey
 * @returns {Promise<Uint8Array>}
 */
export async function spkiOf(publicKey) {
  return publicKey instanceof Uint8Array ? publicKey : new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
}

/**
 * Import a P-256 public key from DER SPKI (bytes or b64u).
 * @param {Uint8Array|string} spki
 * @returns {Promise<CryptoKey>}
 */
export async function publicKeyImport(spki) {
  const der = typeof spki === "string" ? b64uDecode(spki) : spki;
  return crypto.subtle.importKey("spki", der, EC, true, []);
}

/**
 * Import a P-256 private key from PKCS#8 DER and recover its public half.
 * HPKE decapsulation needs the recipient's public key; given a lone
 * non-extractable private key, @hpke/core 1.9 reconstructs it from x alone
 * and may pick the wrong y, so callers always hand it the pair.
 * @param {Uint8Array} pkcs8
 * @param {boolean} extractable whether the private key may be exported again
 * @returns {Promise<CryptoKeyPair>}
 */
export async function privateKeyImport(pkcs8, extractable) {
  // Import once as extractable only to read x, y; the key returned is a fresh import.
  const probe = await crypto.subtle.importKey("pkcs8", pkcs8, EC, true, ["deriveBits"]);
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", probe);
  const publicKey = await crypto.subtle.importKey("jwk", { kty, crv, x, y }, EC, true, []);
  const privateKey = extractable ? probe : await crypto.subtle.importKey("pkcs8", pkcs8, EC, false, ["deriveBits"]);
  return { privateKey, publicKey };
}

/**
 * A record key from its PKCS#8 DER (a CLI export, tests). Extractable, so its
 * holder can grant it to other users.
 * @param {Uint8Array|string} pkcs8 DER bytes or b64u
 * @returns {Promise<import("./format.js").RecordKey>}
 */
export async function recordKeyImport(pkcs8) {
  const keyPair = await privateKeyImport(typeof pkcs8 === "string" ? b64uDecode(pkcs8) : pkcs8, true);
  return { kid: await keyId(keyPair.publicKey), keyPair };
}

/**
 * Generate a P-256 key pair (a user's at enrolment, or a record key pair).
 * The private key is extractable so it can be protected or wrapped.
 * @returns {Promise<CryptoKeyPair>}
 */
export async function keyPairGenerate() {
  return /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey(EC, true, ["deriveBits"]));
}

/** AAD binding a protected user key to its user. */
const userKeyAad = (userId) => concatBytes(utf8("ksr1 user-key"), [0], utf8(String(userId)));

/** PBKDF2-HMAC-SHA256 of the NFC passphrase → AES-256-GCM key. */
async function passphraseKek(passphrase, salt, iterations) {
  const base = await crypto.subtle.importKey("raw", utf8(passphrase.normalize("NFC")), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations }, base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"],
  );
}

/**
 * @typedef {object} ProtectedKey
 * @property {"pbkdf2-sha256"} kdf
 * @property {number} iterations
 * @property {string} salt b64u, 16 bytes
 * @property {string} nonce b64u, 12 bytes
 * @property {string} ct b64u AES-256-GCM ciphertext of the PKCS#8 private key
 */

/**
 * Protect a user private key under the vault passphrase.
 * @param {object} p
 * @param {CryptoKey|Uint8Array} p.privateKey extractable CryptoKey or PKCS#8 DER
 * @param {string} p.passphrase
 * @param {string|number} p.userId the user's id as the API shows it
 * @param {number} [p.iterations] PBKDF2 iterations; lower than 1,000,000 is for tests only
 * @returns {Promise<ProtectedKey>}
 */
export async function privateKeyProtect({ privateKey, passphrase, userId, iterations = PBKDF2_MIN_ITERATIONS }) {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError("iterations must be a positive integer");
  const pkcs8 = privateKey instanceof Uint8Array ? privateKey : new Uint8Array(await crypto.subtle.exportKey("pkcs8", privateKey));
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const kek = await passphraseKek(passphrase, salt, iterations);
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: userKeyAad(userId) }, kek, pkcs8);
  return { kdf: "pbkdf2-sha256", iterations, salt: b64uEncode(salt), nonce: b64uEncode(nonce), ct: b64uEncode(ct) };
}

/**
 * @typedef {object} UserKey
 * @property {string} kid key id of the user's public key
 * @property {CryptoKeyPair} keyPair private key non-extractable unless asked
 */

/**
 * Unlock a protected user private key with the passphrase (any Unicode
 * normalisation of it: it is NFC-normalised first).
 * @param {object} p
 * @param {ProtectedKey|string} p.protectedKey the JSON object or its text
 * @param {string} p.passphrase
 * @param {string|number} p.userId
 * @param {number} [p.minIterations] refuse weaker protection; lower only in tests
 * @param {number} [p.maxIterations]
 * @param {boolean} [p.extractable] keep the private key exportable (to re-protect it)
 * @returns {Promise<UserKey>}
 * @throws {WrongPassphrase} if the passphrase (or user id) does not fit
 * @throws {WeakKeyProtection} if the iteration count is outside [min, max]
 * @throws {MalformedKey} if the protected key is not well-formed
 */
export async function privateKeyUnlock({
  protectedKey, passphrase, userId,
  minIterations = PBKDF2_MIN_ITERATIONS, maxIterations = PBKDF2_MAX_ITERATIONS, extractable = false,
}) {
  let pk = protectedKey;
  let salt;
  let nonce;
  let ct;
  try {
    if (typeof pk === "string") pk = JSON.parse(pk);
    if (pk?.kdf !== "pbkdf2-sha256" || !Number.isSafeInteger(pk.iterations)) throw new Error();
    [salt, nonce, ct] = [b64uDecode(pk.salt), b64uDecode(pk.nonce), b64uDecode(pk.ct)];
    if (salt.length !== 16 || nonce.length !== 12 || ct.length < 17) throw new Error();
  } catch {
    throw new MalformedKey("protected user key is not well-formed");
  }
  if (pk.iterations < minIterations || pk.iterations > maxIterations) {
    throw new WeakKeyProtection(
      `protected user key uses ${pk.iterations} PBKDF2 iterations; accepted range is ${minIterations}..${maxIterations}`,
    );
  }
  const kek = await passphraseKek(passphrase, salt, pk.iterations);
  let pkcs8;
  try {
    pkcs8 = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: userKeyAad(userId) }, kek, ct));
  } catch {
    throw new WrongPassphrase("cannot unlock the user key: wrong passphrase, or it is another user's key");
  }
  try {
    const keyPair = await privateKeyImport(pkcs8, extractable);
    return { kid: await keyId(keyPair.publicKey), keyPair };
  } catch {
    throw new MalformedKey("protected user key does not hold a P-256 PKCS#8 private key");
  } finally {
    pkcs8.fill(0);
  }
}

/** HPKE info of a record key share (FORMAT.md §6). */
const shareInfo = (recordKid, userId) =>
  concatBytes(utf8("ksr1 record-key"), [0], utf8(recordKid), [0], utf8(String(userId)));

/**
 * Open a record key share with the user's unlocked key.
 * @param {object} p
 * @param {string} p.share b64u(enc ‖ ciphertext)
 * @param {string} p.recordKid the record key id the share claims to hold
 * @param {string|number} p.userId
 * @param {UserKey|CryptoKeyPair} p.userKey
 * @returns {Promise<import("./format.js").RecordKey>} record private key
 *   (extractable, so the holder can grant it to others)
 * @throws {BadKeyShare} if the share does not open for this user or holds another key
 */
export async function recordKeyShareOpen({ share, recordKid, userId, userKey }) {
  const keyPair = userKey.keyPair ?? userKey;
  let pkcs8;
  try {
    const blob = b64uDecode(share);
    if (blob.length <= SHARE_MIN) throw new Error("share too short");
    pkcs8 = new Uint8Array(await hpkeSuite.open(
      { recipientKey: keyPair, enc: blob.subarray(0, 65), info: shareInfo(recordKid, userId) }, blob.subarray(65),
    ));
  } catch (e) {
    throw new BadKeyShare(`record key share does not open for user ${userId} and record key ${recordKid}: ${e.message}`);
  }
  let recordPair;
  try {
    recordPair = await privateKeyImport(pkcs8, true);
  } catch {
    throw new BadKeyShare("record key share does not hold a P-256 private key");
  } finally {
    pkcs8.fill(0);
  }
  // The id is bound by the HPKE info, but check the key itself too.
  const kid = await keyId(recordPair.publicKey);
  if (kid !== recordKid) throw new BadKeyShare("record key share holds a different record key than its id says");
  return { kid, keyPair: recordPair };
}

/**
 * Wrap a record private key for a user (granting access, or sealing-time
 * distribution in tests).
 * @param {object} p
 * @param {import("./format.js").RecordKey|CryptoKeyPair|Uint8Array} p.recordKey
 *   record key (extractable private key) or its PKCS#8 DER
 * @param {string} [p.recordKid] required when recordKey is PKCS#8 bytes
 * @param {string|number} p.userId the recipient user's id
 * @param {CryptoKey|Uint8Array|string} p.userPublicKey recipient's public key (CryptoKey, SPKI DER or b64u)
 * @returns {Promise<string>} the share, b64u(enc ‖ ciphertext)
 */
export async function recordKeyShareWrap({ recordKey, recordKid, userId, userPublicKey }) {
  let pkcs8;
  let kid = recordKid;
  if (recordKey instanceof Uint8Array) {
    pkcs8 = recordKey;
    if (!kid) throw new TypeError("recordKid is required with PKCS#8 bytes");
  } else {
    const pair = recordKey.keyPair ?? recordKey;
    pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    kid = await keyId(pair.publicKey);
    if (recordKid && recordKid !== kid) throw new TypeError("recordKid does not match the record key");
  }
  const recipientPublicKey = userPublicKey instanceof CryptoKey ? userPublicKey : await publicKeyImport(userPublicKey);
  const { enc, ct } = await hpkeSuite.seal({ recipientPublicKey, info: shareInfo(kid, userId) }, pkcs8);
  return b64uEncode(concatBytes(new Uint8Array(enc), new Uint8Array(ct)));
}
