"""Generate the fixed KSR1 test vectors in this directory.

HPKE encapsulation is randomised, so sealed bytes cannot be reproduced; the
JSON files are therefore generated once and committed, and both the Python
and the browser implementation check that they *open* to the expected
values. Keys, DEKs, nonces, salts and plaintexts are fixed, so regenerating
changes only the HPKE-dependent bytes. Run from the repository root:

    python tests/crypto/vectors/generate.py [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keeperpam.crypto import keys, parts, terminal
from keeperpam.crypto.terminal import Record, RecordType

HERE = Path(__file__).resolve().parent
RECORDING = "0f8e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_RECORDING = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
USER_ID = "42"
PASSPHRASE = "Grüße, Jürgen — ❄ vault"


def fixed_entropy(label: str) -> Callable[[int], bytes]:
    """Deterministic 'randomness' for vectors: SHA-256 counter stream keyed by ``label``."""
    counter = 0

    def draw(size: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < size:
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
            counter += 1
        return out[:size]

    return draw


def p256(label: str) -> ec.EllipticCurvePrivateKey:
    """A fixed P-256 key derived from ``label``."""
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (2**255)
    return ec.derive_private_key(scalar, ec.SECP256R1())


def b64(data: bytes) -> str:
    return keys.b64u_encode(data)


def key_json(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    return {
        "private_pkcs8": b64(keys.private_key_der(key)),
        "public_spki": b64(keys.public_key_der(key.public_key())),
        "private_pem": keys.private_key_pem(key).decode(),
        "kid": keys.record_key_id(key),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="overwrite existing vectors")
    args = parser.parse_args()
    if (HERE / "parts.json").exists() and not args.force:
        print("vectors exist; pass --force to regenerate (changes HPKE bytes)", file=sys.stderr)
        return 1

    record_key, other_record_key, user_key = p256("record"), p256("other-record"), p256("user")
    signer_seed = hashlib.sha256(b"signer").digest()
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(signer_seed)
    other_signer = ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"other-signer").digest()
    )
    signer_public = signer.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    keys_doc = {
        "record": key_json(record_key),
        "other_record": key_json(other_record_key),
        "user": key_json(user_key),
        "user_id": USER_ID,
        "signer": {
            "private_raw": b64(signer_seed),
            "public_raw": b64(signer_public),
            "public_pem": keys.public_key_pem(signer.public_key()).decode(),
            "kid": keys.signer_key_id(signer),
        },
        "other_signer": {
            "public_raw": b64(other_signer.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)),
            "kid": keys.signer_key_id(other_signer),
        },
    }

    # --- single parts -------------------------------------------------------------
    def seal(label: str, signer_key: ed25519.Ed25519PrivateKey = signer, **fields: object):
        entropy = fixed_entropy(label)
        dek, nonce = entropy(32), entropy(12)
        data = parts.part_seal(
            signer_key=signer_key, _entropy=fixed_entropy(label), **fields  # type: ignore[arg-type]
        )
        return data, dek, nonce

    records0 = [
        terminal.resize_record(0, 80, 24),
        Record(RecordType.OUTPUT, 5, "héllo \x1b[31mwörld\x1b[0m\r\n".encode()),
        Record(RecordType.INPUT, 900, b"ls\r"),
        Record(RecordType.MARKER, 950, "marker ✓".encode()),
    ]
    plain0 = terminal.records_encode(records0)
    base = {
        "recording": RECORDING, "stream": "terminal", "seq": 0, "final": False, "t0": 0,
        "t1": 950, "prev": "", "kf": 0, "record_public_keys": [record_key.public_key()],
    }
    part0, dek0, nonce0 = seal("part0", **base, plaintext=plain0)
    emulator = terminal.TerminalEmulator(80, 24)
    for record in records0:
        emulator.feed(record)
    keyframe = terminal.record_encode(Record(RecordType.KEYFRAME, 1200, emulator.keyframe()))
    body1 = terminal.records_encode([Record(RecordType.OUTPUT, 1200, b"total 0\r\n$ ")])
    part1, dek1, nonce1 = seal(
        "part1", **{**base, "seq": 1, "final": True, "t0": 1200, "t1": 1200,
                    "prev": parts.part_digest(part0), "kf": len(keyframe),
                    "record_public_keys": [other_record_key.public_key(),
                                           record_key.public_key()]},
        plaintext=keyframe + body1,
    )
    guac_plain = b"4.sync,6.352842,1.0;"
    guac, dek_g, nonce_g = seal("guac", **{**base, "stream": "guac", "t1": 0, "final": True},
                                plaintext=guac_plain)
    foreign, _, _ = seal("foreign", **{**base, "recording": OTHER_RECORDING},
                         plaintext=plain0)
    unknown_signer, _, _ = seal("unknown-signer", signer_key=other_signer, **base,
                                plaintext=plain0)

    def opened(data: bytes, plaintext: bytes, dek: bytes, nonce: bytes, expect: dict) -> dict:
        header = parts.part_parse(data).header
        return {
            "part": b64(data), "open": expect, "header": header.to_json(),
            "plaintext": b64(plaintext), "digest": parts.part_digest(data),
            "dek": b64(dek), "nonce": b64(nonce),
        }

    flipped = bytearray(part0)
    flipped[len(flipped) // 2] ^= 0x01
    header_len = int.from_bytes(part0[4:8], "big")
    header_obj = json.loads(part0[8 : 8 + header_len])
    spaced = json.dumps(header_obj, sort_keys=True, separators=(", ", ": ")).encode()
    reordered = json.dumps(dict(reversed(header_obj.items())), separators=(",", ":")).encode()
    escaped = part0[8 : 8 + header_len].replace(b'"terminal"', b'"\\u0074erminal"')

    def rewrap(header_bytes: bytes) -> bytes:
        # Signature is made over the new bytes: the only fault is the header form.
        signed = b"KSR1" + len(header_bytes).to_bytes(4, "big") + header_bytes
        signed += part0[8 + header_len : -64]
        return signed + signer.sign(signed)

    where0 = {"recording": RECORDING, "stream": "terminal", "seq": 0}
    parts_doc = {
        "valid": {
            "terminal_seq0": opened(part0, plain0, dek0, nonce0, where0),
            "terminal_seq1_final": opened(
                part1, keyframe + body1, dek1, nonce1,
                {**where0, "seq": 1, "prev": parts.part_digest(part0)},
            ),
            "guac_seq0_final": opened(guac, guac_plain, dek_g, nonce_g,
                                      {**where0, "stream": "guac"}),
        },
        "invalid": [
            {"name": "bit flipped", "part": b64(bytes(flipped)), "open": where0,
             "error": "TamperedPart"},
            {"name": "truncated", "part": b64(part0[:-1]), "open": where0,
             "error": "MalformedPart"},
            {"name": "header with whitespace", "part": b64(rewrap(spaced)), "open": where0,
             "error": "NonCanonicalHeader"},
            {"name": "header keys unsorted", "part": b64(rewrap(reordered)), "open": where0,
             "error": "NonCanonicalHeader"},
            {"name": "header with an escaped ASCII letter", "part": b64(rewrap(escaped)),
             "open": where0, "error": "NonCanonicalHeader"},
            {"name": "other recording", "part": b64(foreign), "open": where0,
             "error": "UnexpectedPart"},
            {"name": "asked for seq 1", "part": b64(part0), "open": {**where0, "seq": 1},
             "error": "UnexpectedPart"},
            {"name": "wrong prev", "part": b64(part1),
             "open": {**where0, "seq": 1, "prev": "0" * 64}, "error": "BrokenChain"},
            {"name": "unknown signer", "part": b64(unknown_signer), "open": where0,
             "error": "UnknownSigner"},
            {"name": "not wrapped to the reader", "part": b64(part0), "open": where0,
             "record_key": "other_record", "error": "NoRecipient"},
        ],
        "records": {
            "terminal_seq0": [
                {"type": int(r.type), "t": r.t, "data": b64(r.data)} for r in records0
            ],
        },
    }

    # --- a stream ------------------------------------------------------------------------------
    stream_doc = {
        "recording": RECORDING, "stream": "terminal",
        "parts": [b64(part0), b64(part1)],
        "cases": [
            {"name": "complete", "order": [0, 1], "result": "complete"},
            {"name": "truncated", "order": [0], "result": "incomplete"},
            {"name": "empty", "order": [], "result": "incomplete"},
            {"name": "reordered", "order": [1, 0], "result": "tampered"},
            {"name": "duplicated", "order": [0, 0, 1], "result": "tampered"},
            {"name": "first dropped", "order": [1], "result": "tampered"},
        ],
    }

    # --- keys held for users ---------------------------------------------------------
    protected_fast = keys.user_key_protect(
        user_key, passphrase=PASSPHRASE, user_id=USER_ID, iterations=1000,
        _entropy=fixed_entropy("user-key-fast"),
    )
    protected_real = keys.user_key_protect(
        user_key, passphrase=PASSPHRASE, user_id=USER_ID, iterations=1_000_000,
        _entropy=fixed_entropy("user-key-real"),
    )
    share = keys.record_key_share_wrap(
        record_private_key=record_key, user_public_key=user_key.public_key(), user_id=USER_ID
    )
    user_doc = {
        "user_id": USER_ID,
        "passphrase_nfc": unicodedata.normalize("NFC", PASSPHRASE),
        "passphrase_nfd": unicodedata.normalize("NFD", PASSPHRASE),
        "protected_fast": protected_fast,
        "protected_real": protected_real,
        "user_private_pkcs8": b64(keys.private_key_der(user_key)),
        "user_public_spki": b64(keys.public_key_der(user_key.public_key())),
        "record_key_share": share,
        "record_kid": keys.record_key_id(record_key),
        "record_private_pkcs8": b64(keys.private_key_der(record_key)),
    }

    for name, doc in (("keys", keys_doc), ("parts", parts_doc), ("stream", stream_doc),
                      ("user_keys", user_doc)):
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
