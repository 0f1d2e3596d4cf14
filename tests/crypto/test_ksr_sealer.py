"""StreamSealer: cutting rules, keyframes and the final part."""

from __future__ import annotations

import pytest

from keeperpam.crypto import errors, parts, terminal
from keeperpam.crypto.sealer import StreamSealer
from keeperpam.crypto.terminal import Record, RecordType
from tests.paths import FIXTURES

RECORDING = "0f8e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
GUAC = str(FIXTURES / "guacd-ssh-short.guac")


def make_sealer(keyset, stream: str, **kwargs) -> StreamSealer:
    return StreamSealer(recording=RECORDING, stream=stream,
                        record_public_keys=[keyset.record.public_key()],
                        signer_key=keyset.signer, **kwargs)


def open_stream(keyset, sealed, stream):
    return list(parts.stream_open(sealed, record_private_key=keyset.record,
                                  signers=keyset.signers, recording=RECORDING, stream=stream))


def terminal_records(count: int = 400, step_ms: int = 100):
    for i in range(count):
        yield Record(RecordType.OUTPUT, i * step_ms, b"\x1b[32mline %d\x1b[0m\r\n" % i)


def test_terminal_parts_follow_the_rules(keyset) -> None:
    sealer = make_sealer(keyset, "terminal", max_part_bytes=4096)
    records = list(terminal_records())
    sealed = list(sealer.add_records(records)) + sealer.close()
    opened = open_stream(keyset, sealed, "terminal")
    assert len(opened) > 3
    decoded = []
    for part in opened:
        header = part.header
        assert header.t1 - header.t0 < 10_000
        assert len(part.plaintext) <= parts.MAX_PLAINTEXT_BYTES
        part_records = list(terminal.records_decode(part.plaintext))
        if header.seq == 0:
            assert header.kf == 0
        else:
            assert part_records[0].type is RecordType.KEYFRAME
            assert header.kf == part_records[0].encoded_size
        assert (header.t0, header.t1) == (part_records[0].t, part_records[-1].t)
        decoded += list(terminal.records_decode(part.body))
    assert decoded == records
    assert opened[-1].header.final


def test_keyframe_lets_a_player_start_at_any_part(keyset) -> None:
    sealer = make_sealer(keyset, "terminal", max_part_bytes=2048)
    records = list(terminal_records(200))
    sealed = list(sealer.add_records(records)) + sealer.close()
    opened = open_stream(keyset, sealed, "terminal")
    full = terminal.TerminalEmulator()
    for part in opened:
        from_here = terminal.TerminalEmulator()
        for record in terminal.records_decode(part.plaintext):
            from_here.feed(record)
        for record in terminal.records_decode(part.body):
            full.feed(record)
        assert from_here.screen.display == full.screen.display


def test_ten_second_rule(keyset) -> None:
    sealer = make_sealer(keyset, "terminal")
    sealed = list(sealer.add_records(terminal_records(100, step_ms=1000))) + sealer.close()
    headers = [p.header for p in open_stream(keyset, sealed, "terminal")]
    assert len(headers) == 10
    assert all(h.t1 - h.t0 < 10_000 for h in headers)


def test_large_output_is_split_into_records(keyset) -> None:
    sealer = make_sealer(keyset, "terminal")
    big = Record(RecordType.OUTPUT, 0, b"a" * (3 * 1024 * 1024))
    sealed = sealer.add_record(big) + sealer.close()
    opened = open_stream(keyset, sealed, "terminal")
    assert len(opened) >= 3
    body = b"".join(r.data for p in opened for r in terminal.records_decode(p.body))
    assert body == big.data


def test_flush_then_close_gives_keyframe_only_final_part(keyset) -> None:
    sealer = make_sealer(keyset, "terminal")
    assert sealer.add_record(Record(RecordType.OUTPUT, 0, b"hi")) == []
    assert sealer.flush(now_ms=5_000) == []
    flushed = sealer.flush(now_ms=10_000)
    assert len(flushed) == 1
    sealed = flushed + sealer.close()
    opened = open_stream(keyset, sealed, "terminal")
    assert opened[-1].header.final
    assert opened[-1].body == b""


def test_empty_terminal_stream_still_has_a_final_part(keyset) -> None:
    sealed = make_sealer(keyset, "terminal").close()
    (opened,) = open_stream(keyset, sealed, "terminal")
    assert [r.type for r in terminal.records_decode(opened.plaintext)] == [RecordType.RESIZE]


def test_guac_parts_end_after_sync_and_rebuild_the_bytes(keyset) -> None:
    with open(GUAC, "rb") as source:
        data = source.read()
    sealer = make_sealer(keyset, "guac", max_part_bytes=8192, max_part_ms=2000)
    sealed = []
    for offset in range(0, len(data), 777):
        sealed += sealer.add_bytes(data[offset : offset + 777])
    sealed += sealer.close()
    opened = open_stream(keyset, sealed, "guac")
    assert b"".join(p.body for p in opened) == data
    for part in opened[:-1]:
        if len(part.plaintext) < 8192:  # cut by sync, not by a frame larger than a part
            assert b"4.sync," in part.plaintext[part.plaintext.rfind(b";", 0, -1):]
        assert part.header.t1 - part.header.t0 < 2000


def test_zip_stream_slices(keyset) -> None:
    sealer = make_sealer(keyset, "typescript-zip", duration_ms=1234)
    blob = bytes(range(256)) * 9000
    sealed = sealer.add_bytes(blob) + sealer.close()
    opened = open_stream(keyset, sealed, "typescript-zip")
    assert b"".join(p.plaintext for p in opened) == blob
    assert {(p.header.t0, p.header.t1) for p in opened} == {(0, 1234)}


def test_sealer_refuses_misuse(keyset) -> None:
    sealer = make_sealer(keyset, "terminal")
    sealer.add_record(Record(RecordType.OUTPUT, 10, b"x"))
    with pytest.raises(ValueError, match="back"):
        sealer.add_record(Record(RecordType.OUTPUT, 5, b"x"))
    with pytest.raises(ValueError, match="keyframe"):
        sealer.add_record(Record(RecordType.KEYFRAME, 20, b"x"))
    sealer.close()
    with pytest.raises(ValueError, match="closed"):
        sealer.close()
    with pytest.raises(ValueError, match="empty"):
        make_sealer(keyset, "guac").close()


def test_sealed_stream_cut_short_is_incomplete(keyset) -> None:
    sealer = make_sealer(keyset, "terminal", max_part_bytes=2048)
    sealed = list(sealer.add_records(terminal_records(200)))
    with pytest.raises(errors.IncompleteStream):
        parts.stream_verify(sealed, signers=keyset.signers, recording=RECORDING,
                            stream="terminal")


def test_a_sealer_resumed_after_a_flush_continues_the_same_stream(keyset) -> None:
    first = [terminal.resize_record(0, 100, 30), *terminal_records(5)]
    later = list(terminal_records(8))[5:]
    later = [Record(r.type, r.t + 30_000, r.data) for r in later]
    sealer = make_sealer(keyset, "terminal")
    head = [p for r in first for p in sealer.add_record(r)] + sealer.flush(now_ms=20_000)
    assert len(head) == 1
    screen, size = sealer.resume_screen()
    assert size == (100, 30)
    resumed = make_sealer(keyset, "terminal", start_seq=sealer.seq, prev=sealer.prev,
                          start_t=parts.part_parse(head[-1]).header.t1, screen=screen,
                          terminal_size=size)
    went_on = [p for r in later for p in sealer.add_record(r)] + sealer.close()
    picked_up = [p for r in later for p in resumed.add_record(r)] + resumed.close()
    assert [p.plaintext for p in open_stream(keyset, head + went_on, "terminal")] == [
        p.plaintext for p in open_stream(keyset, head + picked_up, "terminal")]
