"""Sealing and reading parts and streams, including hypothesis tamper properties."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeperpam.crypto import errors, parts

RECORDING = "0f8e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_RECORDING = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
FIXTURE_SETTINGS = settings(max_examples=60, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])


def open_all(stream_parts, keyset, *, recording=RECORDING, stream="activity"):
    return [
        opened.plaintext
        for opened in parts.stream_open(stream_parts, record_private_key=keyset.record,
                                        signers=keyset.signers, recording=recording,
                                        stream=stream)
    ]


def test_round_trip(sealed_stream, keyset) -> None:
    plaintexts = [b"a", b"bb" * 1000, b"\x00" * parts.MAX_PLAINTEXT_BYTES]
    assert open_all(sealed_stream(plaintexts), keyset) == plaintexts


def test_part_k_opens_alone(sealed_stream, keyset) -> None:
    stream_parts = sealed_stream([b"zero", b"one", b"two"])
    opened = parts.part_open(stream_parts[2], record_private_key=keyset.record,
                             signers=keyset.signers, recording=RECORDING, stream="activity",
                             seq=2)
    assert opened.plaintext == b"two"
    assert opened.header.final


def test_part_k_checks_prev_when_given(sealed_stream, keyset) -> None:
    stream_parts = sealed_stream([b"zero", b"one", b"two"])
    with pytest.raises(errors.BrokenChain):
        parts.part_open(stream_parts[2], record_private_key=keyset.record,
                        signers=keyset.signers, recording=RECORDING, stream="activity",
                        seq=2, prev=parts.part_digest(stream_parts[0]))


def test_two_recipients(keyset) -> None:
    data = parts.part_seal(
        plaintext=b"x", recording=RECORDING, stream="guac", seq=0, final=True, t0=0, t1=0,
        prev="", kf=0, record_public_keys=[keyset.other_record.public_key(),
                                           keyset.record.public_key()],
        signer_key=keyset.signer,
    )
    for key in (keyset.record, keyset.other_record):
        assert parts.part_open(data, record_private_key=key, signers=keyset.signers,
                               recording=RECORDING, stream="guac", seq=0).plaintext == b"x"


def test_concatenated_parts_read_back(sealed_stream, tmp_path: Path) -> None:
    stream_parts = sealed_stream([b"a", b"b", b"c"])
    blob = tmp_path / "all.ksr"
    blob.write_bytes(b"".join(stream_parts))
    with blob.open("rb") as source:
        assert list(parts.parts_read(source)) == stream_parts


@pytest.mark.parametrize(
    "changes",
    [{"plaintext": b""}, {"plaintext": b"x" * (parts.MAX_PLAINTEXT_BYTES + 1)},
     {"seq": 0, "prev": "ab" * 32}, {"seq": 1, "prev": ""}, {"kf": 2},
     {"recording": RECORDING.upper()}, {"stream": "video"}, {"t0": 5, "t1": 4},
     {"record_public_keys": []}],
)
def test_seal_refuses_invalid_parts(keyset, changes) -> None:
    fields = {"plaintext": b"x", "recording": RECORDING, "stream": "activity", "seq": 0,
              "final": True, "t0": 0, "t1": 0, "prev": "", "kf": 0,
              "record_public_keys": [keyset.record.public_key()]}
    with pytest.raises(ValueError, match="."):
        parts.part_seal(**{**fields, **changes}, signer_key=keyset.signer)


def test_no_plaintext_after_a_bad_part(sealed_stream, keyset) -> None:
    stream_parts = sealed_stream([b"zero", b"one", b"two"])
    damaged = bytearray(stream_parts[1])
    damaged[-70] ^= 1  # inside the ciphertext
    opened = parts.stream_open([stream_parts[0], bytes(damaged), stream_parts[2]],
                               record_private_key=keyset.record, signers=keyset.signers,
                               recording=RECORDING, stream="activity")
    assert next(opened).plaintext == b"zero"
    with pytest.raises(errors.BadSignature):
        next(opened)


def test_every_single_bit_flip_is_rejected(sealed_stream, keyset) -> None:
    """Exhaustive over a small part: no bit of it may change unnoticed."""
    (data,) = sealed_stream([b"!"])
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(errors.TamperedPart):
            parts.part_open(bytes(damaged), record_private_key=keyset.record,
                            signers=keyset.signers, recording=RECORDING, stream="activity",
                            seq=0)


@FIXTURE_SETTINGS
@given(payload=st.binary(min_size=1, max_size=3000), data=st.data())
def test_bit_flip_anywhere_property(sealed_stream, keyset, payload, data) -> None:
    (part,) = sealed_stream([payload])
    bit = data.draw(st.integers(0, len(part) * 8 - 1))
    damaged = bytearray(part)
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(errors.TamperedPart):
        parts.part_open(bytes(damaged), record_private_key=keyset.record,
                        signers=keyset.signers, recording=RECORDING, stream="activity", seq=0)


@FIXTURE_SETTINGS
@given(order=st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_dropped_duplicated_reordered_parts(sealed_stream, keyset, order) -> None:
    stream_parts = sealed_stream([b"p0", b"p1", b"p2", b"p3"])
    given_parts = [stream_parts[i] for i in order]
    kwargs = {"signers": keyset.signers, "recording": RECORDING, "stream": "activity"}
    if order == [0, 1, 2, 3]:
        assert parts.stream_verify(given_parts, **kwargs).parts == 4
    elif order == list(range(len(order))):
        with pytest.raises(errors.IncompleteStream):
            parts.stream_verify(given_parts, **kwargs)
    else:
        with pytest.raises(errors.TamperedPart):
            parts.stream_verify(given_parts, **kwargs)


@FIXTURE_SETTINGS
@given(position=st.integers(0, 3), source=st.sampled_from(["recording", "stream"]))
def test_spliced_part_is_rejected(sealed_stream, keyset, position, source) -> None:
    stream_parts = sealed_stream([b"p0", b"p1", b"p2", b"p3"])
    other = (sealed_stream([b"p0", b"p1", b"p2", b"p3"], recording=OTHER_RECORDING)
             if source == "recording" else sealed_stream([b"p0", b"p1", b"p2", b"p3"],
                                                         stream="guac"))
    spliced = list(stream_parts)
    spliced[position] = other[position]
    with pytest.raises(errors.UnexpectedPart):
        parts.stream_verify(spliced, signers=keyset.signers, recording=RECORDING,
                            stream="activity")


def test_spliced_from_another_sealing_of_the_same_recording(sealed_stream, keyset) -> None:
    first = sealed_stream([b"p0", b"p1", b"p2"])
    second = sealed_stream([b"p0", b"p1", b"p2"])
    with pytest.raises(errors.BrokenChain):
        parts.stream_verify([first[0], second[1], first[2]], signers=keyset.signers,
                            recording=RECORDING, stream="activity")


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_truncated_stream_is_incomplete_not_valid(sealed_stream, keyset, keep) -> None:
    stream_parts = sealed_stream([b"p0", b"p1", b"p2"])
    opened = parts.stream_open(stream_parts[:keep], record_private_key=keyset.record,
                               signers=keyset.signers, recording=RECORDING, stream="activity")
    received = [next(opened).plaintext for _ in range(keep)]
    assert received == [b"p0", b"p1"][:keep]
    with pytest.raises(errors.IncompleteStream) as caught:
        next(opened)
    assert caught.value.parts == keep
    assert not isinstance(caught.value, errors.TamperedPart)


def test_unfinished_stream_is_incomplete(sealed_stream, keyset) -> None:
    with pytest.raises(errors.IncompleteStream):
        parts.stream_verify(sealed_stream([b"a", b"b"], final=False), signers=keyset.signers,
                            recording=RECORDING, stream="activity")


def test_part_after_final_is_rejected(sealed_stream, keyset) -> None:
    stream_parts = sealed_stream([b"a", b"b"])
    extra = sealed_stream([b"a", b"b", b"c"])[2]
    with pytest.raises(errors.UnexpectedPart):
        parts.stream_verify([*stream_parts, extra], signers=keyset.signers,
                            recording=RECORDING, stream="activity")


def test_wrong_record_key(sealed_stream, keyset) -> None:
    (data,) = sealed_stream([b"secret"])
    with pytest.raises(errors.NoRecipient):
        parts.part_open(data, record_private_key=keyset.other_record, signers=keyset.signers,
                        recording=RECORDING, stream="activity", seq=0)


def test_unknown_signer(sealed_stream, keyset) -> None:
    (data,) = sealed_stream([b"secret"])
    with pytest.raises(errors.UnknownSigner):
        parts.part_verify(data, signers={})


def _resign(data: bytes, keyset, header_bytes: bytes) -> bytes:
    """Replace the header and sign again, so only the header's form is at fault."""
    length = int.from_bytes(data[4:8], "big")
    signed = b"KSR1" + len(header_bytes).to_bytes(4, "big") + header_bytes
    signed += data[8 + length : -64]
    return signed + keyset.signer.sign(signed)


NON_CANONICAL = {
    "whitespace": lambda h: json.dumps(h, sort_keys=True).encode(),
    "unsorted keys": lambda h: json.dumps(dict(reversed(h.items())),
                                          separators=(",", ":")).encode(),
    "trailing newline": lambda h: parts.header_canonical_bytes(h) + b"\n",
    "escaped ascii": lambda h: parts.header_canonical_bytes(h).replace(b'"v"', b'"\\u0076"'),
    "duplicate key": lambda h: parts.header_canonical_bytes(h).replace(b'{"final"',
                                                                      b'{"final":true,"final"'),
}


@pytest.mark.parametrize("name", sorted(NON_CANONICAL))
def test_non_canonical_header_is_rejected(sealed_stream, keyset, name) -> None:
    (data,) = sealed_stream([b"secret"])
    header = json.loads(parts.part_parse(data).header_bytes)
    forged = _resign(data, keyset, NON_CANONICAL[name](header))
    with pytest.raises(errors.NonCanonicalHeader):
        parts.part_verify(forged, signers=keyset.signers)


def test_unescaped_unicode_is_non_canonical(sealed_stream, keyset) -> None:
    (data,) = sealed_stream([b"secret"])
    header = json.loads(parts.part_parse(data).header_bytes)
    header["stream"] = "activité"
    forged = _resign(data, keyset, json.dumps(header, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False).encode())
    with pytest.raises(errors.NonCanonicalHeader):
        parts.part_verify(forged, signers=keyset.signers)


def test_library_never_imports_django() -> None:
    """The crypto library and CLI stay pure Python (usable offline without Django)."""
    root = Path(__file__).resolve().parents[2] / "keeperpam"
    for path in [*(root / "crypto").glob("*.py"), *(root / "cli").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in {"django", "rest_framework", "celery"}
                           for n in names), path
