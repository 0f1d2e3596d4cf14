/**
 * Error classes mirroring keeperpam.crypto.errors, one per failure mode.
 *
 * Three families answer what a user needs to know:
 * - TamperedPart (`tampered === true`): the bytes are not what an honest
 *   sealer produced; show "this recording was altered", never its content.
 * - IncompleteStream: everything present is authentic but the stream stops
 *   before its final part; the valid prefix stays playable.
 * - KeyAccessError: the reader's own keys cannot open the material
 *   (no share for this record key, wrong passphrase, ...).
 * @module ksr1/errors
 */

/** Base class of every KSR1 error. */
export class KsrError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }

  /** True for integrity and authenticity failures. */
  get tampered() {
    return this instanceof TamperedPart;
  }
}

/** A part, or the sequence of parts, fails an integrity or authenticity check. */
export class TamperedPart extends KsrError {}

/** The bytes do not follow the part layout or header schema. */
export class MalformedPart extends TamperedPart {}

/** The header parses but is not the canonical serialisation of itself. */
export class NonCanonicalHeader extends MalformedPart {}

/** An authentic part, but not the one asked for (recording, stream, seq), or one after the final part. */
export class UnexpectedPart extends TamperedPart {}

/** The part names a signer key id the reader does not trust. */
export class UnknownSigner extends TamperedPart {}

/** The Ed25519 signature does not verify under the named signer key. */
export class BadSignature extends TamperedPart {}

/** The part's `prev` is not the SHA-256 of the part before it. */
export class BrokenChain extends TamperedPart {}

/** The data key could not be unwrapped, or AES-GCM authentication failed. */
export class DecryptionFailed extends TamperedPart {}

/** Decrypted terminal plaintext does not follow the record framing (§4). */
export class MalformedRecord extends TamperedPart {}

/** The stream ends before a part with `final: true`. */
export class IncompleteStream extends KsrError {
  /**
   * @param {string} message
   * @param {{parts?: number, t1?: number|null}} [detail] valid parts read, end time (ms) of the last
   */
  constructor(message, { parts = 0, t1 = null } = {}) {
    super(message);
    this.parts = parts;
    this.t1 = t1;
  }
}

/** The reader's keys cannot open this material. */
export class KeyAccessError extends KsrError {}

/** The part's DEK is not wrapped to the reader's record key. */
export class NoRecipient extends KeyAccessError {}

/** The protected user key does not open with this passphrase and user id. */
export class WrongPassphrase extends KeyAccessError {}

/** A record key share does not open with this user key and user id, or holds another key. */
export class BadKeyShare extends KeyAccessError {}

/** A protected user key uses PBKDF2 iterations outside the accepted range. */
export class WeakKeyProtection extends KeyAccessError {}

/** A key or protected-key JSON cannot be parsed as the expected kind of key. */
export class MalformedKey extends KsrError {}
