"""The committed vectors open to exactly what they say (shared with the browser tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keeperpam.crypto import errors, keys, parts, terminal


def load_vector(name: str) -> dict:
    return json.loads((Path(__file__).parent / "vectors" / f"{name}.json").read_text())

KEYS = load_vector("keys")
PARTS = load_vector("parts")
STREAM = load_vector("stream")
USER = load_vector("user_keys")


def record_key(name: str = "record"):
    return serialization.load_der_private_key(
        keys.b64u_decode(KEYS[name]["private_pkcs8"]), password=None
    )


def signers() -> dict:
    public = ed25519.Ed25519PublicKey.from_public_bytes(
        keys.b64u_decode(KEYS["signer"]["public_raw"])
    )
    return {KEYS["signer"]["kid"]: public}


def test_key_ids_match_their_keys() -> None:
    for name in ("record", "other_record", "user"):
        assert keys.record_key_id(record_key(name)) == KEYS[name]["kid"]
    signer = keys.signer_private_key_load(keys.b64u_decode(KEYS["signer"]["private_raw"]))
    assert keys.signer_key_id(signer) == KEYS["signer"]["kid"]
    assert keys.signer_public_key_load(KEYS["signer"]["public_pem"].encode()) is not None


@pytest.mark.parametrize("name", sorted(PARTS["valid"]))
def test_valid_part_opens(name: str) -> None:
    case = PARTS["valid"][name]
    data = keys.b64u_decode(case["part"])
    opened = parts.part_open(data, record_private_key=record_key(), signers=signers(),
                             **case["open"])
    assert opened.plaintext == keys.b64u_decode(case["plaintext"])
    assert opened.header.to_json() == case["header"]
    assert opened.digest == case["digest"]
    # The AES-GCM layer alone, from the recorded DEK and nonce.
    part = parts.part_parse(data)
    assert part.nonce == keys.b64u_decode(case["nonce"])
    assert AESGCM(keys.b64u_decode(case["dek"])).decrypt(
        part.nonce, part.ciphertext, part.aad
    ) == opened.plaintext


def test_vector_records_decode() -> None:
    plaintext = keys.b64u_decode(PARTS["valid"]["terminal_seq0"]["plaintext"])
    decoded = [
        {"type": int(r.type), "t": r.t, "data": keys.b64u_encode(r.data)}
        for r in terminal.records_decode(plaintext)
    ]
    assert decoded == PARTS["records"]["terminal_seq0"]


@pytest.mark.parametrize("case", PARTS["invalid"], ids=lambda case: case["name"])
def test_invalid_part_is_rejected(case: dict) -> None:
    expected = getattr(errors, case["error"])
    with pytest.raises(expected):
        parts.part_open(keys.b64u_decode(case["part"]),
                        record_private_key=record_key(case.get("record_key", "record")),
                        signers=signers(), **case["open"])


@pytest.mark.parametrize("case", STREAM["cases"], ids=lambda case: case["name"])
def test_stream_cases(case: dict) -> None:
    data = [keys.b64u_decode(STREAM["parts"][i]) for i in case["order"]]
    kwargs = {"signers": signers(), "recording": STREAM["recording"],
              "stream": STREAM["stream"]}
    if case["result"] == "complete":
        assert parts.stream_verify(data, **kwargs).parts == len(data)
        assert len(list(parts.stream_open(data, record_private_key=record_key(), **kwargs))) == 2
    else:
        expected = (errors.IncompleteStream if case["result"] == "incomplete"
                    else errors.TamperedPart)
        with pytest.raises(expected):
            parts.stream_verify(data, **kwargs)


@pytest.mark.parametrize("form", ["passphrase_nfc", "passphrase_nfd"])
def test_protected_user_key_fast(form: str) -> None:
    key = keys.user_key_unlock(USER["protected_fast"], passphrase=USER[form],
                               user_id=USER["user_id"], min_iterations=1000)
    assert keys.b64u_encode(keys.private_key_der(key)) == USER["user_private_pkcs8"]


def test_protected_user_key_real_iterations() -> None:
    key = keys.user_key_unlock(USER["protected_real"], passphrase=USER["passphrase_nfd"],
                               user_id=USER["user_id"])
    assert keys.b64u_encode(keys.private_key_der(key)) == USER["user_private_pkcs8"]


def test_low_iterations_refused_by_default() -> None:
    with pytest.raises(errors.WeakKeyProtection):
        keys.user_key_unlock(USER["protected_fast"], passphrase=USER["passphrase_nfc"],
                             user_id=USER["user_id"])


def test_record_key_share_vector() -> None:
    user_key = serialization.load_der_private_key(
        keys.b64u_decode(USER["user_private_pkcs8"]), password=None
    )
    key = keys.record_key_share_unwrap(USER["record_key_share"], user_private_key=user_key,
                                       user_id=USER["user_id"], record_kid=USER["record_kid"])
    assert keys.b64u_encode(keys.private_key_der(key)) == USER["record_private_pkcs8"]
