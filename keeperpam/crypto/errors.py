"""Exceptions raised while sealing, reading and unlocking KSR1 material.

Every failure mode has its own class so callers (the CLI, the API, the
players) can map it to a precise message. The classes are grouped so a caller
can answer the questions that matter to a user without listing every leaf:

* :class:`TamperedPart` — the bytes are not what an honest sealer produced
  (malformed, re-encoded, badly signed, out of place, undecryptable).
* :class:`IncompleteStream` — everything present is authentic, but the stream
  stops before its ``final`` part (a session still recording, or a sealer
  that died); the valid prefix remains playable.
* :class:`KeyAccessError` — the reader's own keys cannot open the material
  (no share for this record key, wrong passphrase, share for another user).
"""

from __future__ import annotations


class KsrError(Exception):
    """Base class of every error raised by :mod:`keeperpam.crypto`."""


# --- tampered / invalid material -------------------------------------------


class TamperedPart(KsrError):
    """A part (or the sequence of parts) fails an integrity or authenticity check."""


class MalformedPart(TamperedPart):
    """The bytes do not follow the KSR1 part layout or header schema."""


class NonCanonicalHeader(MalformedPart):
    """The header parses, but is not the canonical JSON serialisation of itself."""


class UnexpectedPart(TamperedPart):
    """An authentic part, but not the one asked for (recording, stream or seq differ)."""


class UnknownSigner(TamperedPart):
    """The part names a signer key id that the reader does not trust."""


class BadSignature(TamperedPart):
    """The Ed25519 signature does not verify under the named signer key."""


class BrokenChain(TamperedPart):
    """The part's ``prev`` is not the SHA-256 of the part before it."""


class DecryptionFailed(TamperedPart):
    """The data key could not be unwrapped, or AES-GCM authentication failed."""


class MalformedRecord(TamperedPart):
    """Decrypted terminal plaintext does not follow the record framing (§4)."""


# --- incomplete -------------------------------------------------------------


class IncompleteStream(KsrError):
    """The stream ends before a part with ``final: true``.

    ``parts`` is the number of valid parts read before the end and ``t1`` the
    end time (ms) of the last of them, so callers can say how much is playable.
    """

    def __init__(self, message: str, *, parts: int = 0, t1: int | None = None) -> None:
        super().__init__(message)
        self.parts = parts
        self.t1 = t1


# --- the reader's keys ------------------------------------------------------


class KeyAccessError(KsrError):
    """The reader's keys cannot open this material."""


class NoRecipient(KeyAccessError):
    """The part's DEK is not wrapped to the reader's record key."""


class WrongPassphrase(KeyAccessError):
    """The protected user key does not open with this passphrase and user id."""


class BadKeyShare(KeyAccessError):
    """A record key share does not open with this user key and user id, or holds another key."""


class WeakKeyProtection(KeyAccessError):
    """A protected user key uses KDF parameters below (or absurdly above) the accepted range."""


class MalformedKey(KsrError):
    """A key file or key JSON cannot be parsed as the expected kind of key."""
