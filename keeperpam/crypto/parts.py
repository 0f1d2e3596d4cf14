"""Sealed parts (FORMAT.md §1–§3, §5): sealing, parsing, verifying and opening.

A part is ``KSR1 ‖ u32be(H) ‖ header ‖ nonce ‖ AES-GCM ciphertext ‖ Ed25519
signature``. Readers check, in this order: layout and header schema,
canonical header, trusted signer and signature, that the part is the one
asked for (recording/stream/seq), the ``prev`` chain, then unwrap the data
key and decrypt. Plaintext is only returned once every check has passed.

Opening one part needs nothing from the parts before it (pass ``prev`` to
also check its link); :func:`stream_open` and :func:`stream_verify` walk a
whole stream and tell an incomplete stream from a tampered one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import (
    BadSignature,
    BrokenChain,
    DecryptionFailed,
    IncompleteStream,
    MalformedPart,
    NonCanonicalHeader,
    NoRecipient,
    UnexpectedPart,
    UnknownSigner,
)
from .keys import (
    HPKE_SUITE,
    b64u_decode,
    b64u_encode,
    is_key_id,
    record_key_id,
    require_p256_private,
    require_p256_public,
    signer_key_id,
)

__all__ = [
    "MAGIC",
    "MAX_HEADER_BYTES",
    "MAX_PLAINTEXT_BYTES",
    "STREAMS",
    "OpenedPart",
    "Part",
    "PartHeader",
    "Recipient",
    "StreamSummary",
    "dek_info",
    "header_canonical_bytes",
    "part_digest",
    "part_open",
    "part_parse",
    "part_seal",
    "part_verify",
    "parts_read",
    "stream_open",
    "stream_verify",
]

MAGIC = b"KSR1"
VERSION = 1
STREAMS = frozenset({"terminal", "guac", "typescript-zip", "activity"})
MAX_PLAINTEXT_BYTES = 1_048_576
#: Readers refuse larger headers before allocating for them; a header carries
#: one recipient per record key (usually one or two), so 64 KiB is generous.
MAX_HEADER_BYTES = 65_536
NONCE_BYTES = 12
TAG_BYTES = 16
SIGNATURE_BYTES = 64
ENC_BYTES = 65 + 48  # HPKE P-256 encapsulated key ‖ AES-256-GCM(DEK) with tag
_PREFIX = struct.Struct(">4sI")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEADER_KEYS = frozenset(
    {"v", "recording", "stream", "seq", "final", "t0", "t1", "prev", "n", "kf", "signer",
     "recipients"}
)

Signers = Mapping[str, ed25519.Ed25519PublicKey]
Entropy = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class Recipient:
    """One wrapped copy of the part's DEK: record key id and ``enc`` (113 bytes)."""

    kid: str
    enc: bytes


@dataclass(frozen=True, slots=True)
class PartHeader:
    """The validated header of a part (§2)."""

    recording: str
    stream: str
    seq: int
    final: bool
    t0: int
    t1: int
    prev: str
    n: int
    kf: int
    signer: str
    recipients: tuple[Recipient, ...]
    v: int = VERSION

    def to_json(self) -> dict[str, Any]:
        """Return the header as the JSON object that gets serialised."""
        return {
            "v": self.v,
            "recording": self.recording,
            "stream": self.stream,
            "seq": self.seq,
            "final": self.final,
            "t0": self.t0,
            "t1": self.t1,
            "prev": self.prev,
            "n": self.n,
            "kf": self.kf,
            "signer": self.signer,
            "recipients": [{"kid": r.kid, "enc": b64u_encode(r.enc)} for r in self.recipients],
        }


@dataclass(frozen=True, slots=True)
class Part:
    """A parsed (not yet verified) part; slices refer to the original bytes."""

    header: PartHeader
    header_bytes: bytes
    nonce: bytes
    ciphertext: bytes
    signature: bytes
    signed: bytes
    digest: str

    @property
    def aad(self) -> bytes:
        """AES-GCM additional data: magic, header length and header."""
        return self.signed[: 8 + len(self.header_bytes)]


@dataclass(frozen=True, slots=True)
class OpenedPart:
    """A part that passed every check, with its plaintext."""

    header: PartHeader
    plaintext: bytes
    digest: str

    @property
    def keyframe(self) -> bytes:
        """The first ``kf`` plaintext bytes (empty when the part has no keyframe)."""
        return self.plaintext[: self.header.kf]

    @property
    def body(self) -> bytes:
        """The plaintext after the keyframe: what a player continuing from part seq-1 plays."""
        return self.plaintext[self.header.kf :]


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What :func:`stream_verify` learned about a complete stream."""

    recording: str
    stream: str
    parts: int
    t1: int
    last_digest: str


def header_canonical_bytes(header: Mapping[str, Any]) -> bytes:
    """Serialise a header object canonically (§2)."""
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")


def part_digest(data: bytes) -> str:
    """Hex SHA-256 of a complete part: the next part's ``prev``."""
    return hashlib.sha256(data).hexdigest()


def dek_info(recording: str, stream: str, seq: int) -> bytes:
    """HPKE ``info`` binding a wrapped DEK to its recording, stream and seq (§3)."""
    return b"ksr1 dek\x00" + f"{recording}\x00{stream}\x00{seq}".encode()


def _is_uint(value: object) -> bool:
    # bool is an int subclass in Python; JSON true must not pass as 1.
    return type(value) is int and value >= 0


def _header_from_json(obj: object) -> PartHeader:
    """Validate the header schema; raise :class:`MalformedPart` naming the first problem."""
    if not isinstance(obj, dict):
        raise MalformedPart("header is not a JSON object")
    keys = set(obj)
    if keys != _HEADER_KEYS:
        missing, extra = sorted(_HEADER_KEYS - keys), sorted(keys - _HEADER_KEYS)
        raise MalformedPart(f"header keys wrong (missing {missing}, unexpected {extra})")
    if obj["v"] != VERSION or type(obj["v"]) is not int:
        raise MalformedPart(f"unsupported version {obj['v']!r}")
    recording, stream = obj["recording"], obj["stream"]
    if not isinstance(recording, str) or not _UUID.fullmatch(recording):
        raise MalformedPart("recording is not a lowercase hyphenated UUID")
    if stream not in STREAMS:
        raise MalformedPart(f"unknown stream {stream!r}")
    for name in ("seq", "t0", "t1", "n", "kf"):
        if not _is_uint(obj[name]):
            raise MalformedPart(f"{name} is not a non-negative integer")
    seq, t0, t1, n, kf = obj["seq"], obj["t0"], obj["t1"], obj["n"], obj["kf"]
    if type(obj["final"]) is not bool:
        raise MalformedPart("final is not a boolean")
    if t1 < t0:
        raise MalformedPart("t1 is before t0")
    if not TAG_BYTES + 1 <= n <= TAG_BYTES + MAX_PLAINTEXT_BYTES:
        raise MalformedPart(f"n={n} is outside 17..{TAG_BYTES + MAX_PLAINTEXT_BYTES}")
    if kf > n - TAG_BYTES or (seq == 0 and kf != 0):
        raise MalformedPart("kf is larger than the plaintext, or set on seq 0")
    prev = obj["prev"]
    if seq == 0 and prev != "":
        raise MalformedPart("seq 0 must have prev \"\"")
    if seq > 0 and not is_key_id(prev):
        raise MalformedPart("prev is not a lowercase hex SHA-256")
    if not is_key_id(obj["signer"]):
        raise MalformedPart("signer is not a lowercase hex key id")
    raw_recipients = obj["recipients"]
    if not isinstance(raw_recipients, list) or not raw_recipients:
        raise MalformedPart("recipients must be a non-empty list")
    recipients = []
    for item in raw_recipients:
        if not isinstance(item, dict) or set(item) != {"kid", "enc"}:
            raise MalformedPart("a recipient must be {\"kid\", \"enc\"}")
        if not is_key_id(item["kid"]):
            raise MalformedPart("recipient kid is not a lowercase hex key id")
        try:
            enc = b64u_decode(item["enc"])
        except ValueError as exc:
            raise MalformedPart("recipient enc is not canonical base64url") from exc
        if len(enc) != ENC_BYTES:
            raise MalformedPart(f"recipient enc is {len(enc)} bytes, expected {ENC_BYTES}")
        recipients.append(Recipient(item["kid"], enc))
    if len({r.kid for r in recipients}) != len(recipients):
        raise MalformedPart("recipients repeat a kid")
    return PartHeader(
        recording=recording, stream=stream, seq=seq, final=obj["final"], t0=t0, t1=t1,
        prev=prev, n=n, kf=kf, signer=obj["signer"], recipients=tuple(recipients),
    )


def _header_length(prefix: bytes) -> int:
    """Check magic and return H from the first 8 bytes of a part."""
    if len(prefix) < 8:
        raise MalformedPart("part is shorter than its 8-byte prefix")
    magic, length = _PREFIX.unpack_from(prefix)
    if magic != MAGIC:
        raise MalformedPart("magic is not KSR1")
    if not 2 <= length <= MAX_HEADER_BYTES:
        raise MalformedPart(f"header length {length} is outside 2..{MAX_HEADER_BYTES}")
    return length


def _header_parse(header_bytes: bytes) -> PartHeader:
    try:
        obj = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPart("header is not UTF-8 JSON") from exc
    # Compare against the canonical form of what was parsed (before the
    # schema, so the form is judged first): this catches duplicate keys,
    # whitespace, key order, unescaped unicode, escaped ASCII and friends.
    if header_canonical_bytes(obj) != header_bytes:
        raise NonCanonicalHeader("header is not in canonical JSON form")
    return _header_from_json(obj)


def part_parse(data: bytes) -> Part:
    """Split a part into its fields and validate layout and header (no crypto).

    Raises :class:`MalformedPart` or :class:`NonCanonicalHeader`.
    """
    data = bytes(data)
    length = _header_length(data[:8])
    header_end = 8 + length
    if len(data) < header_end:
        raise MalformedPart("part is shorter than its header")
    header_bytes = data[8:header_end]
    header = _header_parse(header_bytes)
    expected = header_end + NONCE_BYTES + header.n + SIGNATURE_BYTES
    if len(data) != expected:
        raise MalformedPart(f"part is {len(data)} bytes, its header says {expected}")
    ct_start = header_end + NONCE_BYTES
    ct_end = ct_start + header.n
    return Part(
        header=header,
        header_bytes=header_bytes,
        nonce=data[header_end:ct_start],
        ciphertext=data[ct_start:ct_end],
        signature=data[ct_end:],
        signed=data[:ct_end],
        digest=part_digest(data),
    )


def parts_read(source: BinaryIO) -> Iterator[bytes]:
    """Yield the parts of a concatenated object one at a time (parts are self-delimiting)."""
    while True:
        prefix = source.read(8)
        if not prefix:
            return
        length = _header_length(prefix)
        header_bytes = source.read(length)
        if len(header_bytes) != length:
            raise MalformedPart("truncated part header")
        header = _header_parse(header_bytes)
        rest_length = NONCE_BYTES + header.n + SIGNATURE_BYTES
        rest = source.read(rest_length)
        if len(rest) != rest_length:
            raise MalformedPart("truncated part body")
        yield prefix + header_bytes + rest


def part_seal(
    *,
    plaintext: bytes,
    recording: str,
    stream: str,
    seq: int,
    final: bool,
    t0: int,
    t1: int,
    prev: str,
    kf: int,
    record_public_keys: Sequence[ec.EllipticCurvePublicKey],
    signer_key: ed25519.Ed25519PrivateKey,
    _entropy: Entropy = os.urandom,
) -> bytes:
    """Encrypt, wrap and sign one part; return its bytes.

    A fresh DEK and nonce are drawn for every call. ``_entropy`` is a seam for
    fixed test vectors only. Raises :class:`ValueError` when the arguments
    would make a part that readers reject.
    """
    if not 1 <= len(plaintext) <= MAX_PLAINTEXT_BYTES:
        raise ValueError(f"plaintext must be 1..{MAX_PLAINTEXT_BYTES} bytes")
    if not record_public_keys:
        raise ValueError("at least one record public key is needed")
    dek, nonce = _entropy(32), _entropy(NONCE_BYTES)
    info = dek_info(recording, stream, seq)
    recipients = tuple(
        Recipient(
            record_key_id(require_p256_public(key)),
            HPKE_SUITE.encrypt(dek, key, info=info),
        )
        for key in record_public_keys
    )
    header = PartHeader(
        recording=recording, stream=stream, seq=seq, final=final, t0=t0, t1=t1, prev=prev,
        n=len(plaintext) + TAG_BYTES, kf=kf, signer=signer_key_id(signer_key),
        recipients=recipients,
    )
    header_obj = header.to_json()
    try:
        _header_from_json(header_obj)
    except MalformedPart as exc:
        raise ValueError(f"refusing to seal an invalid part: {exc}") from exc
    header_bytes = header_canonical_bytes(header_obj)
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ValueError("too many recipients for one header")
    aad = _PREFIX.pack(MAGIC, len(header_bytes)) + header_bytes
    signed = aad + nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)
    return signed + signer_key.sign(signed)


def part_verify(
    data: bytes,
    *,
    signers: Signers,
    recording: str | None = None,
    stream: str | None = None,
    seq: int | None = None,
    prev: str | None = None,
) -> Part:
    """Check a part's structure, signature and, where given, identity and chain link.

    ``recording``/``stream``/``seq`` left as None are not checked; ``prev`` is
    the hex digest of the previous part (None: do not check the link, e.g.
    when seeking straight to part k). Returns the parsed part.
    """
    part = part_parse(data)
    header = part.header
    signer = signers.get(header.signer)
    if signer is None:
        raise UnknownSigner(f"part seq {header.seq} is signed by untrusted key {header.signer}")
    try:
        signer.verify(part.signature, part.signed)
    except InvalidSignature as exc:
        raise BadSignature(f"signature of part seq {header.seq} does not verify") from exc
    for name, wanted in (("recording", recording), ("stream", stream), ("seq", seq)):
        actual = getattr(header, name)
        if wanted is not None and actual != wanted:
            raise UnexpectedPart(f"expected {name} {wanted!r}, part has {actual!r}")
    if prev is not None and header.seq > 0 and header.prev != prev:
        raise BrokenChain(f"part seq {header.seq} does not follow the part before it")
    return part


def _decrypt(part: Part, record_private_key: ec.EllipticCurvePrivateKey) -> bytes:
    header = part.header
    kid = record_key_id(record_private_key)
    recipient = next((r for r in header.recipients if r.kid == kid), None)
    if recipient is None:
        raise NoRecipient(f"part seq {header.seq} is not wrapped to record key {kid}")
    try:
        dek = HPKE_SUITE.decrypt(
            recipient.enc, record_private_key,
            info=dek_info(header.recording, header.stream, header.seq),
        )
        if len(dek) != 32:
            raise DecryptionFailed(f"part seq {header.seq}: data key has the wrong length")
        return AESGCM(dek).decrypt(part.nonce, part.ciphertext, part.aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed(f"part seq {header.seq} does not decrypt") from exc


def part_open(
    data: bytes,
    *,
    record_private_key: ec.EllipticCurvePrivateKey,
    signers: Signers,
    recording: str,
    stream: str,
    seq: int,
    prev: str | None = None,
) -> OpenedPart:
    """Verify one part (see :func:`part_verify`) and decrypt it.

    No earlier part is needed; pass ``prev`` to also check the chain link.
    """
    require_p256_private(record_private_key)
    part = part_verify(data, signers=signers, recording=recording, stream=stream, seq=seq,
                       prev=prev)
    return OpenedPart(part.header, _decrypt(part, record_private_key), part.digest)


def _walk(
    parts: Iterable[bytes],
    *,
    signers: Signers,
    recording: str,
    stream: str,
    start_seq: int,
    start_prev: str | None,
) -> Iterator[Part]:
    """Verify parts in order; raise :class:`IncompleteStream` if the stream stops early."""
    expected_seq, prev = start_seq, start_prev
    last: Part | None = None
    for data in parts:
        if last is not None and last.header.final:
            raise UnexpectedPart(f"part after the final part seq {last.header.seq}")
        part = part_verify(data, signers=signers, recording=recording, stream=stream,
                           seq=expected_seq, prev=prev)
        yield part
        last, prev, expected_seq = part, part.digest, expected_seq + 1
    if last is None:
        raise IncompleteStream(f"incomplete: stream {stream} has no parts", parts=0)
    if not last.header.final:
        count = last.header.seq + 1
        raise IncompleteStream(
            f"incomplete: stream {stream} ends at part seq {last.header.seq} "
            f"(t={last.header.t1} ms) without a final part",
            parts=count, t1=last.header.t1,
        )


def stream_open(
    parts: Iterable[bytes],
    *,
    record_private_key: ec.EllipticCurvePrivateKey,
    signers: Signers,
    recording: str,
    stream: str,
    start_seq: int = 0,
    start_prev: str | None = None,
) -> Iterator[OpenedPart]:
    """Yield each part of a stream decrypted, in order, checking seq and the chain.

    Every valid part is yielded before an error is raised: a
    :class:`TamperedPart` subclass at the first bad part, or
    :class:`IncompleteStream` once the parts run out without a final one.
    ``start_seq``/``start_prev`` let a player begin at a later part.
    """
    require_p256_private(record_private_key)
    for part in _walk(parts, signers=signers, recording=recording, stream=stream,
                      start_seq=start_seq, start_prev=start_prev):
        yield OpenedPart(part.header, _decrypt(part, record_private_key), part.digest)


def stream_verify(
    parts: Iterable[bytes],
    *,
    signers: Signers,
    recording: str,
    stream: str,
) -> StreamSummary:
    """Check a whole stream without decrypting it: structure, signatures, chain, completeness."""
    count, last_t1, last_digest = 0, 0, ""
    for part in _walk(parts, signers=signers, recording=recording, stream=stream,
                      start_seq=0, start_prev=""):
        count, last_t1, last_digest = count + 1, part.header.t1, part.digest
    # _walk has raised IncompleteStream unless a final part was read.
    return StreamSummary(recording, stream, count, last_t1, last_digest)
