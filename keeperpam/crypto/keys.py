"""Key ids, key loading and the keys held for users (FORMAT.md §2, §6).

* Record keys are P-256 key pairs (``cryptography`` EC keys); their id is the
  hex SHA-256 of the public key's DER SubjectPublicKeyInfo.
* Signer keys are Ed25519; their id is the hex SHA-256 of the 32-byte raw
  public key.
* A *record key share* is a record private key HPKE-wrapped to one user.
* A *protected user key* is a user private key under a passphrase-derived KEK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from .errors import BadKeyShare, MalformedKey, WeakKeyProtection, WrongPassphrase

__all__ = [
    "DEFAULT_PBKDF2_ITERATIONS",
    "HPKE_SUITE",
    "MAX_PBKDF2_ITERATIONS",
    "MIN_PBKDF2_ITERATIONS",
    "b64u_decode",
    "b64u_encode",
    "record_key_generate",
    "record_key_id",
    "record_key_share_unwrap",
    "record_key_share_wrap",
    "record_private_key_load",
    "record_public_key_load",
    "signer_key_generate",
    "signer_key_id",
    "signer_private_key_load",
    "signer_public_key_load",
    "user_key_protect",
    "user_key_unlock",
]

#: HPKE base mode, DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM.
HPKE_SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

DEFAULT_PBKDF2_ITERATIONS = 1_000_000
MIN_PBKDF2_ITERATIONS = 1_000_000
#: Upper bound a reader accepts: a hostile server must not be able to make a
#: client spin for hours by raising the iteration count.
MAX_PBKDF2_ITERATIONS = 10_000_000

_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64U = re.compile(r"[A-Za-z0-9_-]*")

Entropy = Callable[[int], bytes]


# --- base64url ---------------------------------------------------------------


def b64u_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Decode strict, canonical base64url without padding.

    Raises :class:`ValueError` on padding, foreign characters, an impossible
    length or non-zero trailing bits, so that every byte string has exactly
    one accepted encoding (signed headers must not be malleable).
    """
    if not isinstance(text, str) or not _B64U.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not canonical base64url") from exc
    if b64u_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


# --- key ids and generation ---------------------------------------------------


def record_key_id(public_key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """Return the record key id: hex SHA-256 of the DER SubjectPublicKeyInfo."""
    if isinstance(public_key, ec.EllipticCurvePrivateKey):
        public_key = public_key.public_key()
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def signer_key_id(public_key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey) -> str:
    """Return the signer key id: hex SHA-256 of the 32-byte raw Ed25519 public key."""
    if isinstance(public_key, ed25519.Ed25519PrivateKey):
        public_key = public_key.public_key()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def record_key_generate() -> ec.EllipticCurvePrivateKey:
    """Generate a P-256 key pair usable as a record key (or a user key)."""
    return ec.generate_private_key(ec.SECP256R1())


def signer_key_generate() -> ed25519.Ed25519PrivateKey:
    """Generate an Ed25519 sealer signing key."""
    return ed25519.Ed25519PrivateKey.generate()


def require_p256_public(key: object) -> ec.EllipticCurvePublicKey:
    """Return ``key`` if it is a P-256 public key, else raise :class:`MalformedKey`."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise MalformedKey("expected a P-256 public key")
    return key


def require_p256_private(key: object) -> ec.EllipticCurvePrivateKey:
    """Return ``key`` if it is a P-256 private key, else raise :class:`MalformedKey`."""
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise MalformedKey("expected a P-256 private key")
    return key


def private_key_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM (for key files the user protects)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> bytes:
    """Serialise a public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 DER (the form FORMAT.md §6 wraps)."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """Serialise a public key as DER SubjectPublicKeyInfo."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- loading key files ------------------------------------------------------------


def _raw_32(data: bytes) -> bytes | None:
    """Return 32 key bytes given raw, hex or base64url text; None if ``data`` is none of these."""
    if len(data) == 32:
        return data
    text = data.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text.decode("ascii"))
    if len(text) in (43, 44):
        try:
            raw = b64u_decode(text.decode("ascii").rstrip("="))
        except (ValueError, UnicodeDecodeError):
            return None
        return raw if len(raw) == 32 else None
    return None


def _load_any(data: bytes) -> object:
    """Parse PEM or DER, private or public; raise :class:`MalformedKey` otherwise."""
    loaders: list[Callable[[bytes], object]]
    if data.lstrip().startswith(b"-----BEGIN"):
        loaders = [
            lambda d: serialization.load_pem_private_key(d, password=None),
            serialization.load_pem_public_key,
        ]
    else:
        loaders = [
            lambda d: serialization.load_der_private_key(d, password=None),
            serialization.load_der_public_key,
        ]
    for loader in loaders:
        try:
            return loader(data)
        except (ValueError, TypeError):
            continue
    raise MalformedKey("not a PEM or DER key (encrypted key files are not supported)")


def signer_public_key_load(data: bytes) -> ed25519.Ed25519PublicKey:
    """Load a trusted signer key from PEM/DER (public or private) or raw 32 public bytes.

    Raw 32 bytes (also as hex or base64url text) are read as the *public* key,
    since a reader only ever needs that half.
    """
    raw = _raw_32(data)
    if raw is not None:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    key = _load_any(data)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise MalformedKey("expected an Ed25519 signer key")


def signer_private_key_load(data: bytes) -> ed25519.Ed25519PrivateKey:
    """Load a signing key from PEM/DER PKCS#8 or a raw 32-byte seed (also hex/base64url)."""
    raw = _raw_32(data)
    if raw is not None:
        return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    key = _load_any(data)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise MalformedKey("expected an Ed25519 private signing key")


def record_private_key_load(data: bytes) -> ec.EllipticCurvePrivateKey:
    """Load a record private key from PEM or DER PKCS#8."""
    return require_p256_private(_load_any(data))


def record_public_key_load(data: bytes) -> ec.EllipticCurvePublicKey:
    """Load a record public key from PEM/DER (public or private) or a 65-byte raw point."""
    if len(data) == 65 and data[:1] == b"\x04":
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
        except ValueError as exc:
            raise MalformedKey("not a valid P-256 point") from exc
    key = _load_any(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return require_p256_public(key)


# --- record key shares (§6) ---------------------------------------------------------


def _share_info(record_kid: str, user_id: str) -> bytes:
    return b"ksr1 record-key\x00" + record_kid.encode() + b"\x00" + user_id.encode()


def record_key_share_wrap(
    *,
    record_private_key: ec.EllipticCurvePrivateKey,
    user_public_key: ec.EllipticCurvePublicKey,
    user_id: str,
) -> str:
    """Wrap a record private key to one user; return the share as b64u(enc ‖ ciphertext)."""
    require_p256_private(record_private_key)
    require_p256_public(user_public_key)
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    info = _share_info(record_key_id(record_private_key), user_id)
    sealed = HPKE_SUITE.encrypt(private_key_der(record_private_key), user_public_key, info=info)
    return b64u_encode(sealed)


def record_key_share_unwrap(
    share: str,
    *,
    user_private_key: ec.EllipticCurvePrivateKey,
    user_id: str,
    record_kid: str,
) -> ec.EllipticCurvePrivateKey:
    """Open a record key share and check it holds the record key ``record_kid``.

    Raises :class:`BadKeyShare` if the share is malformed, was made for another
    user id or user key, or holds a key other than the one it claims.
    """
    require_p256_private(user_private_key)
    try:
        sealed = b64u_decode(share)
    except ValueError as exc:
        raise BadKeyShare("record key share is not canonical base64url") from exc
    try:
        der = HPKE_SUITE.decrypt(sealed, user_private_key, info=_share_info(record_kid, user_id))
    except (InvalidTag, ValueError) as exc:
        raise BadKeyShare(
            f"record key share does not open for user {user_id!r} and record key {record_kid}"
        ) from exc
    try:
        key = require_p256_private(serialization.load_der_private_key(der, password=None))
    except (ValueError, TypeError, MalformedKey) as exc:
        raise BadKeyShare("record key share does not hold a P-256 private key") from exc
    if record_key_id(key) != record_kid:
        raise BadKeyShare("record key share holds a different record key than its id says")
    return key


# --- protected user keys (§6) -------------------------------------------------------


def _user_key_aad(user_id: str) -> bytes:
    return b"ksr1 user-key\x00" + user_id.encode()


def _kek(passphrase: str, salt: bytes, iterations: int) -> bytes:
    # NFC so that the same passphrase typed on macOS (often NFD) and elsewhere
    # derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
    return kdf.derive(secret)


def user_key_protect(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    passphrase: str,
    user_id: str,
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    _entropy: Entropy = os.urandom,
) -> dict[str, Any]:
    """Encrypt a user private key under a passphrase; return the §6 JSON object.

    ``iterations`` below the default are only for tests (the reader refuses
    them unless explicitly told otherwise). ``_entropy`` is a test seam for
    fixed vectors; production code never passes it.
    """
    require_p256_private(private_key)
    if iterations < 1:
        raise ValueError("iterations must be positive")
    salt, nonce = _entropy(16), _entropy(12)
    kek = _kek(passphrase, salt, iterations)
    ct = AESGCM(kek).encrypt(nonce, private_key_der(private_key), _user_key_aad(user_id))
    return {
        "kdf": "pbkdf2-sha256",
        "iterations": iterations,
        "salt": b64u_encode(salt),
        "nonce": b64u_encode(nonce),
        "ct": b64u_encode(ct),
    }


def user_key_unlock(
    protected: Mapping[str, Any] | str | bytes,
    *,
    passphrase: str,
    user_id: str,
    min_iterations: int = MIN_PBKDF2_ITERATIONS,
    max_iterations: int = MAX_PBKDF2_ITERATIONS,
) -> ec.EllipticCurvePrivateKey:
    """Decrypt a protected user private key (dict or its JSON text).

    Raises :class:`MalformedKey` for a malformed object,
    :class:`WeakKeyProtection` if ``iterations`` is outside
    [``min_iterations``, ``max_iterations``], and :class:`WrongPassphrase`
    when AES-GCM fails — which is also what a protected key made for another
    user id looks like, the two cannot be told apart.
    """
    if isinstance(protected, str | bytes):
        try:
            protected = json.loads(protected)
        except ValueError as exc:
            raise MalformedKey("protected user key is not JSON") from exc
    if not isinstance(protected, Mapping):
        raise MalformedKey("protected user key must be a JSON object")
    if protected.get("kdf") != "pbkdf2-sha256":
        raise MalformedKey(f"unsupported kdf {protected.get('kdf')!r}")
    iterations = protected.get("iterations")
    if type(iterations) is not int:
        raise MalformedKey("iterations must be an integer")
    if not min_iterations <= iterations <= max_iterations:
        raise WeakKeyProtection(
            f"protected user key uses {iterations} PBKDF2 iterations; "
            f"accepted range is {min_iterations}..{max_iterations}"
        )
    try:
        salt = b64u_decode(protected["salt"])
        nonce = b64u_decode(protected["nonce"])
        ct = b64u_decode(protected["ct"])
    except (KeyError, ValueError) as exc:
        raise MalformedKey("protected user key: salt, nonce and ct must be base64url") from exc
    if len(salt) != 16 or len(nonce) != 12 or len(ct) < 17:
        raise MalformedKey("protected user key: wrong salt, nonce or ciphertext length")
    kek = _kek(passphrase, salt, iterations)
    try:
        der = AESGCM(kek).decrypt(nonce, ct, _user_key_aad(user_id))
    except InvalidTag as exc:
        raise WrongPassphrase(
            f"cannot unlock the user key: wrong passphrase, or it is not user {user_id!r}'s key"
        ) from exc
    try:
        return require_p256_private(serialization.load_der_private_key(der, password=None))
    except (ValueError, TypeError) as exc:
        raise MalformedKey("protected user key does not hold a PKCS#8 private key") from exc


def is_key_id(value: object) -> bool:
    """True if ``value`` is a lowercase 64-hex-digit key id."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None
