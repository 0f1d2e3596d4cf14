"""Shared keys and helpers for the crypto tests (no Django needed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keeperpam.crypto import keys, parts

RECORDING = "0f8e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_RECORDING = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@dataclass(frozen=True)
class KeySet:
    """A record key, a second record key and a trusted signer."""

    record: ec.EllipticCurvePrivateKey
    other_record: ec.EllipticCurvePrivateKey
    signer: ed25519.Ed25519PrivateKey

    @property
    def signers(self) -> dict[str, ed25519.Ed25519PublicKey]:
        return {keys.signer_key_id(self.signer): self.signer.public_key()}


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return KeySet(keys.record_key_generate(), keys.record_key_generate(),
                  keys.signer_key_generate())


def seal_stream(
    keyset: KeySet,
    plaintexts: list[bytes],
    *,
    recording: str = RECORDING,
    stream: str = "activity",
    final: bool = True,
) -> list[bytes]:
    """Seal plaintexts as consecutive parts of one stream (last one final if ``final``)."""
    sealed: list[bytes] = []
    prev = ""
    for seq, plaintext in enumerate(plaintexts):
        part = parts.part_seal(
            plaintext=plaintext, recording=recording, stream=stream, seq=seq,
            final=final and seq == len(plaintexts) - 1, t0=0, t1=10, prev=prev, kf=0,
            record_public_keys=[keyset.record.public_key()], signer_key=keyset.signer,
        )
        sealed.append(part)
        prev = parts.part_digest(part)
    return sealed


@pytest.fixture
def sealed_stream(keyset: KeySet) -> Callable[..., list[bytes]]:
    def make(plaintexts: list[bytes], **kwargs: object) -> list[bytes]:
        return seal_stream(keyset, plaintexts, **kwargs)  # type: ignore[arg-type]

    return make
