/**
 * KSR1 sealed parts (FORMAT.md §1–§5): canonical header JSON, part parsing,
 * verification, decryption, sealing, and whole-stream reading with the
 * `prev` chain and `final` checks.
 *
 * No function here ever returns plaintext from a part that failed a check:
 * decryption is the last step, after the header, signature and chain.
 * @module ksr1/format
 */

import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from "@hpke/core";
import { b64uDecode, b64uEncode, concatBytes, sha256Hex, utf8 } from "./b64u.js";
import {
  BadSignature,
  BrokenChain,
  DecryptionFailed,
  IncompleteStream,
  MalformedPart,
  NoRecipient,
  NonCanonicalHeader,
  UnexpectedPart,
  UnknownSigner,
} from "./errors.js";

export const MAGIC = utf8("KSR1");
export const VERSION = 1;
export const STREAMS = Object.freeze(["terminal", "guac", "typescript-zip", "activity"]);
export const MAX_PLAINTEXT = 1048576;
/** Readers refuse larger headers (as keeperpam.crypto does): 64 KiB holds hundreds of recipients. */
export const MAX_HEADER = 65536;
const NONCE_LEN = 12;
const TAG_LEN = 16;
const SIG_LEN = 64;
const ENC_LEN = 65 + 32 + TAG_LEN;
const HEADER_KEYS = ["final", "kf", "n", "prev", "recipients", "recording", "seq", "signer", "stream", "t0", "t1", "v"];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

/** The one HPKE suite of FORMAT.md §3: DHKEM(P-256), HKDF-SHA256, AES-256-GCM. */
export const hpkeSuite = new CipherSuite({
  kem: new DhkemP256HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

// ---------------------------------------------------------------- canonical JSON

/** Compare strings by code point, as Python's sort does (JS sorts UTF-16 units). */
function compareCodePoints(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

const SHORT_ESCAPES = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

/** A JSON string literal exactly as Python's json.dumps(ensure_ascii=True) writes it. */
function canonicalString(s) {
  let out = '"';
  // Python escapes everything outside printable ASCII (0x20-0x7e), DEL included;
  // iterating UTF-16 code units escapes astral characters as surrogate pairs, as it does.
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    if (SHORT_ESCAPES[ch]) out += SHORT_ESCAPES[ch];
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

/**
 * Serialise a JSON value like Python's
 * `json.dumps(value, sort_keys=True, separators=(",", ":"))`.
 * Only integers are accepted as numbers: Python's float repr has no exact
 * JS counterpart and no KSR1 field is a float.
 * @param {*} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new TypeError("only safe integers are canonical");
    return Object.is(value, -0) ? "0" : String(value);
  }
  if (typeof value === "string") return canonicalString(value);
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(compareCodePoints);
    return "{" + keys.map((k) => canonicalString(k) + ":" + canonicalJson(value[k])).join(",") + "}";
  }
  throw new TypeError(`not serialisable: ${typeof value}`);
}

// ---------------------------------------------------------------- header

const isUint = (x) => Number.isSafeInteger(x) && x >= 0;

/** Throw MalformedPart unless `h` has exactly FORMAT.md §2's keys and types. */
function checkHeaderShape(h) {
  const bad = (why) => {
    throw new MalformedPart(`header: ${why}`);
  };
  if (h === null || typeof h !== "object" || Array.isArray(h)) bad("not an object");
  const keys = Object.keys(h).sort();
  if (keys.join(",") !== HEADER_KEYS.join(",")) bad(`keys are ${keys.join(",")}`);
  if (h.v !== VERSION) bad(`unsupported version ${h.v}`);
  if (typeof h.recording !== "string" || !UUID_RE.test(h.recording)) bad("recording");
  if (!STREAMS.includes(h.stream)) bad("stream");
  if (!isUint(h.seq)) bad("seq");
  if (typeof h.final !== "boolean") bad("final");
  if (!isUint(h.t0) || !isUint(h.t1) || h.t1 < h.t0) bad("t0/t1");
  if (typeof h.prev !== "string" || !(h.seq === 0 ? h.prev === "" : HEX64_RE.test(h.prev))) bad("prev");
  if (!isUint(h.n) || h.n < TAG_LEN + 1 || h.n > MAX_PLAINTEXT + TAG_LEN) bad("n");
  if (!isUint(h.kf) || h.kf > h.n - TAG_LEN || (h.seq === 0 && h.kf !== 0)) bad("kf");
  if (typeof h.signer !== "string" || !HEX64_RE.test(h.signer)) bad("signer");
  if (!Array.isArray(h.recipients) || h.recipients.length === 0) bad("recipients");
  for (const r of h.recipients) {
    if (r === null || typeof r !== "object" || Object.keys(r).sort().join(",") !== "enc,kid") bad("recipient keys");
    if (typeof r.kid !== "string" || !HEX64_RE.test(r.kid)) bad("recipient kid");
    let enc;
    try {
      enc = b64uDecode(r.enc);
    } catch {
      bad("recipient enc is not base64url");
    }
    if (enc.length !== ENC_LEN) bad(`recipient enc is ${enc.length} bytes`);
  }
  if (new Set(h.recipients.map((r) => r.kid)).size !== h.recipients.length) bad("recipients repeat a kid");
}

/**
 * @typedef {object} PartHeader
 * @property {number} v
 * @property {string} recording
 * @property {string} stream
 * @property {number} seq
 * @property {boolean} final
 * @property {number} t0
 * @property {number} t1
 * @property {string} prev
 * @property {number} n
 * @property {number} kf
 * @property {string} signer
 * @property {{kid: string, enc: string}[]} recipients
 */

/**
 * @typedef {object} ParsedPart
 * @property {PartHeader} header
 * @property {Uint8Array} bytes     the complete part
 * @property {Uint8Array} aad       bytes [0, 8+H)
 * @property {Uint8Array} nonce
 * @property {Uint8Array} ciphertext ciphertext with its tag
 * @property {Uint8Array} signed    bytes [0, 20+H+n)
 * @property {Uint8Array} signature
 */

/**
 * Parse one part's bytes and check rule 1's structure (magic, canonical
 * header, field types, `n` matching the bytes present). Verifies nothing
 * cryptographic.
 * @param {Uint8Array} bytes exactly one part
 * @returns {ParsedPart}
 * @throws {MalformedPart|NonCanonicalHeader}
 */
export function partParse(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new MalformedPart("part must be a Uint8Array");
  if (bytes.length < 8 || !MAGIC.every((b, i) => bytes[i] === b)) throw new MalformedPart("bad magic");
  const H = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4);
  if (H < 2 || H > MAX_HEADER) throw new MalformedPart(`header length ${H} is outside 2..${MAX_HEADER}`);
  if (8 + H + NONCE_LEN + SIG_LEN > bytes.length) throw new MalformedPart("truncated header");
  const headerBytes = bytes.subarray(8, 8 + H);
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch {
    throw new MalformedPart("header is not UTF-8 JSON");
  }
  checkHeaderShape(header);
  const canonical = utf8(canonicalJson(header));
  if (canonical.length !== H || !canonical.every((b, i) => b === headerBytes[i])) {
    throw new NonCanonicalHeader("header is not in canonical form");
  }
  if (bytes.length !== 8 + H + NONCE_LEN + header.n + SIG_LEN) {
    throw new MalformedPart(`length ${bytes.length} does not match header n=${header.n}`);
  }
  const end = 8 + H + NONCE_LEN + header.n;
  return {
    header,
    bytes,
    aad: bytes.subarray(0, 8 + H),
    nonce: bytes.subarray(8 + H, 8 + H + NONCE_LEN),
    ciphertext: bytes.subarray(8 + H + NONCE_LEN, end),
    signed: bytes.subarray(0, end),
    signature: bytes.subarray(end),
  };
}

/**
 * Total byte length of the part starting at `offset` of `bytes`, read from
 * its header alone (parts are self-delimiting), or null if more bytes are
 * needed to tell.
 * @param {Uint8Array} bytes
 * @param {number} [offset]
 * @returns {number|null}
 * @throws {MalformedPart}
 */
export function partLength(bytes, offset = 0) {
  if (bytes.length - offset < 8) return null;
  if (!MAGIC.every((b, i) => bytes[offset + i] === b)) throw new MalformedPart("bad magic");
  const H = new DataView(bytes.buffer, bytes.byteOffset + offset, 8).getUint32(4);
  if (H < 2 || H > MAX_HEADER) throw new MalformedPart(`header length ${H} is outside 2..${MAX_HEADER}`);
  if (bytes.length - offset < 8 + H) return null;
  let n;
  try {
    n = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(offset + 8, offset + 8 + H))).n;
  } catch {
    throw new MalformedPart("header is not UTF-8 JSON");
  }
  if (!isUint(n)) throw new MalformedPart("header: n");
  return 8 + H + NONCE_LEN + n + SIG_LEN;
}

/**
 * Split concatenated parts (one stored object holding a whole stream).
 * @param {Uint8Array} bytes
 * @returns {Uint8Array[]}
 * @throws {MalformedPart} if the bytes do not end on a part boundary
 */
export function partsSplit(bytes) {
  const parts = [];
  let offset = 0;
  while (offset < bytes.length) {
    const len = partLength(bytes, offset);
    if (len === null || offset + len > bytes.length) throw new MalformedPart("truncated part");
    parts.push(bytes.subarray(offset, offset + len));
    offset += len;
  }
  return parts;
}

// ---------------------------------------------------------------- keys used here

/**
 * Key id of a record public key: hex SHA-256 of its DER SubjectPublicKeyInfo.
 * @param {CryptoKey|Uint8Array} publicKey ECDH P-256 public CryptoKey or SPKI DER
 * @returns {Promise<string>}
 */
export async function recordKeyId(publicKey) {
  const spki = publicKey instanceof Uint8Array ? publicKey : new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
  return sha256Hex(spki);
}

/**
 * Key id of an Ed25519 signer: hex SHA-256 of its 32-byte raw public key.
 * @param {CryptoKey|Uint8Array} publicKey
 * @returns {Promise<string>}
 */
export async function signerKeyId(publicKey) {
  const raw = publicKey instanceof Uint8Array ? publicKey : new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
  return sha256Hex(raw);
}

/**
 * Import trusted sealer keys into the map `partOpen`/`streamOpen` take.
 * @param {Iterable<Uint8Array|string>} rawPublicKeys 32-byte Ed25519 keys, bytes or b64u
 * @returns {Promise<Map<string, CryptoKey>>} signer id → verify key
 */
export async function signersImport(rawPublicKeys) {
  const signers = new Map();
  for (const k of rawPublicKeys) {
    const raw = typeof k === "string" ? b64uDecode(k) : k;
    const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, true, ["verify"]);
    signers.set(await signerKeyId(raw), key);
  }
  return signers;
}

/**
 * Generate an Ed25519 signing key pair (browser-side sealing, tests).
 * @returns {Promise<CryptoKeyPair>}
 */
export async function signerKeyGenerate() {
  return /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]));
}

/** HPKE info of a part's DEK (FORMAT.md §3). */
function dekInfo(recording, stream, seq) {
  return concatBytes(utf8("ksr1 dek"), [0], utf8(recording), [0], utf8(stream), [0], utf8(String(seq)));
}

/** Import a record public key given as CryptoKey or SPKI DER. */
async function ecdhPublicKey(key) {
  if (!(key instanceof Uint8Array)) return key;
  return crypto.subtle.importKey("spki", key, { name: "ECDH", namedCurve: "P-256" }, true, []);
}

// ---------------------------------------------------------------- seal

/**
 * Seal one part (FORMAT.md §1–§3), as the sealer does. Mirrors Python's
 * `part_seal`. Each call draws a fresh DEK and nonce.
 * @param {object} p
 * @param {Uint8Array} p.plaintext 1 byte to 1 MiB
 * @param {string} p.recording recording UUID
 * @param {string} p.stream
 * @param {number} p.seq
 * @param {boolean} p.final
 * @param {number} p.t0
 * @param {number} p.t1
 * @param {string} p.prev hex SHA-256 of the previous part, "" for seq 0
 * @param {number} p.kf keyframe length at the start of the plaintext
 * @param {(CryptoKey|Uint8Array)[]} p.recordPublicKeys ECDH P-256 public keys or SPKI DER
 * @param {CryptoKeyPair} p.signerKey Ed25519 pair (public key must be exportable)
 * @returns {Promise<Uint8Array>} the part's bytes
 * @throws {RangeError} for arguments that would make a part readers reject
 */
export async function partSeal({ plaintext, recording, stream, seq, final, t0, t1, prev, kf, recordPublicKeys, signerKey }) {
  if (!(plaintext instanceof Uint8Array) || plaintext.length < 1 || plaintext.length > MAX_PLAINTEXT) {
    throw new RangeError("plaintext must be 1 byte to 1 MiB");
  }
  if (!recordPublicKeys?.length) throw new RangeError("at least one record public key is needed");
  const dek = crypto.getRandomValues(new Uint8Array(32));
  const recipients = [];
  for (const pk of recordPublicKeys) {
    const recipientPublicKey = await ecdhPublicKey(pk);
    const { enc, ct } = await hpkeSuite.seal({ recipientPublicKey, info: dekInfo(recording, stream, seq) }, dek);
    recipients.push({ kid: await recordKeyId(recipientPublicKey), enc: b64uEncode(concatBytes(new Uint8Array(enc), new Uint8Array(ct))) });
  }
  const header = {
    v: VERSION, recording, stream, seq, final, t0, t1, prev,
    n: plaintext.length + TAG_LEN, kf, signer: await signerKeyId(signerKey.publicKey), recipients,
  };
  try {
    checkHeaderShape(header);
  } catch (e) {
    throw new RangeError(`refusing to seal an invalid part: ${e.message}`);
  }
  const headerBytes = utf8(canonicalJson(header));
  if (headerBytes.length > MAX_HEADER) throw new RangeError("too many recipients for one header");
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, headerBytes.length);
  const aad = concatBytes(MAGIC, length, headerBytes);
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_LEN));
  const aesKey = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["encrypt"]);
  dek.fill(0);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, aesKey, plaintext));
  const signed = concatBytes(aad, nonce, ct);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signerKey.privateKey, signed));
  return concatBytes(signed, sig);
}

// ---------------------------------------------------------------- open

/**
 * A record private key able to open parts.
 * @typedef {object} RecordKey
 * @property {string} kid record key id
 * @property {CryptoKeyPair} keyPair ECDH P-256 pair
 */

/**
 * @typedef {object} OpenedPart
 * @property {PartHeader} header
 * @property {Uint8Array} plaintext
 * @property {string} hash hex SHA-256 of the part's bytes (the next part's `prev`)
 */

/**
 * Check a part's structure, signature, identity and chain link, in the
 * order keeperpam.crypto's `part_verify` does (so both name the same error
 * for the same bytes); decrypts nothing.
 * @param {object} p
 * @param {Uint8Array} p.bytes the part
 * @param {Map<string, CryptoKey>} p.signers trusted signers, from `signersImport`
 * @param {string} [p.recording] expected recording; omit to skip
 * @param {string} [p.stream] expected stream; omit to skip
 * @param {number} [p.seq] expected seq; omit to skip
 * @param {string} [p.prev] hash of the previous part; omit to skip the chain check
 * @returns {Promise<ParsedPart & {hash: string}>}
 */
export async function partVerify({ bytes, signers, recording, stream, seq, prev }) {
  const part = partParse(bytes);
  const h = part.header;
  const verifyKey = signers.get(h.signer);
  if (!verifyKey) throw new UnknownSigner(`part seq ${h.seq} is signed by untrusted key ${h.signer}`);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, verifyKey, part.signature, part.signed))) {
    throw new BadSignature(`signature of part seq ${h.seq} does not verify`);
  }
  for (const [name, wanted] of [["recording", recording], ["stream", stream], ["seq", seq]]) {
    if (wanted !== undefined && h[name] !== wanted) throw new UnexpectedPart(`expected ${name} ${wanted}, part has ${h[name]}`);
  }
  if (prev !== undefined && h.seq > 0 && h.prev !== prev) {
    throw new BrokenChain(`part seq ${h.seq} does not follow the part before it`);
  }
  return { ...part, hash: await sha256Hex(bytes) };
}

/**
 * Verify and decrypt one part, applying FORMAT.md §5 rules 1–4.
 * @param {object} p
 * @param {Uint8Array} p.bytes the part
 * @param {string} p.recording expected recording UUID
 * @param {string} p.stream expected stream
 * @param {number} p.seq expected seq
 * @param {string} [p.prev] expected `prev` (hash of the previous part); omit to skip
 *   the chain check when opening a part out of order, e.g. after a seek
 * @param {Map<string, CryptoKey>} p.signers trusted signers, from `signersImport`
 * @param {RecordKey} p.recordKey
 * @returns {Promise<OpenedPart>}
 */
export async function partOpen({ bytes, recording, stream, seq, prev, signers, recordKey }) {
  if (recording === undefined || stream === undefined || seq === undefined) {
    throw new TypeError("partOpen needs the recording, stream and seq it expects");
  }
  const part = await partVerify({ bytes, recording, stream, seq, prev, signers });
  const { header: h, hash } = part;
  const recipient = h.recipients.find((r) => r.kid === recordKey.kid);
  if (!recipient) throw new NoRecipient(`part seq ${seq} is not wrapped to record key ${recordKey.kid}`);
  let plaintext;
  try {
    const blob = b64uDecode(recipient.enc);
    const dek = new Uint8Array(await hpkeSuite.open(
      { recipientKey: recordKey.keyPair, enc: blob.subarray(0, 65), info: dekInfo(recording, stream, seq) },
      blob.subarray(65),
    ));
    if (dek.length !== 32) throw new Error("DEK length");
    const aesKey = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["decrypt"]);
    dek.fill(0);
    plaintext = new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: part.nonce, additionalData: part.aad }, aesKey, part.ciphertext,
    ));
  } catch (e) {
    throw new DecryptionFailed(`part seq ${seq} does not decrypt: ${e.message}`);
  }
  return { header: h, plaintext, hash };
}

/**
 * Read a stream in order (rules 1–5): yields each verified, decrypted part,
 * and after the last one throws IncompleteStream unless it was `final`.
 * Every part yielded before an error is genuine, so a player may keep
 * playing them ("playable up to its last valid part").
 * @param {object} p
 * @param {Iterable<Uint8Array>|AsyncIterable<Uint8Array>} p.parts the stream's parts from `startSeq`
 * @param {string} p.recording
 * @param {string} p.stream
 * @param {Map<string, CryptoKey>} p.signers
 * @param {RecordKey} p.recordKey
 * @param {number} [p.startSeq] seq of the first part given (a player seeking to part k)
 * @param {string} [p.startPrev] hash of the part before `startSeq`, if known
 * @yields {OpenedPart}
 * @throws {TamperedPart} at the first bad part
 * @throws {IncompleteStream} once the parts run out without a final one
 */
export async function* streamOpen({ parts, recording, stream, signers, recordKey, startSeq = 0, startPrev }) {
  let seq = startSeq;
  let prev = startSeq === 0 ? "" : startPrev;
  let last = null;
  for await (const bytes of parts) {
    if (last?.final) throw new UnexpectedPart(`part after the final part seq ${last.seq}`);
    const opened = await partOpen({ bytes, recording, stream, seq, prev, signers, recordKey });
    yield opened;
    last = opened.header;
    prev = opened.hash;
    seq += 1;
  }
  if (last === null) throw new IncompleteStream(`incomplete: stream ${stream} has no parts`);
  if (!last.final) {
    throw new IncompleteStream(
      `incomplete: stream ${stream} ends at part seq ${last.seq} (t=${last.t1} ms) without a final part`,
      { parts: last.seq + 1, t1: last.t1 },
    );
  }
}

/**
 * Convenience over `streamOpen`: the plaintexts of a complete stream.
 * @param {Parameters<typeof streamOpen>[0]} p
 * @returns {Promise<OpenedPart[]>}
 * @throws as `streamOpen`; nothing is returned from an incomplete stream
 */
export async function streamOpenAll(p) {
  const out = [];
  for await (const opened of streamOpen(p)) out.push(opened);
  return out;
}

