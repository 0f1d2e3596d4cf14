"""Terminal record framing, converters and keyframes."""

from __future__ import annotations

import io
import json

import pyte
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeperpam.crypto import errors, terminal
from keeperpam.crypto.terminal import Record, RecordType
from tests.paths import FIXTURES as SHARED_FIXTURES

FIXTURES = str(SHARED_FIXTURES)

records_strategy = st.lists(
    st.builds(Record, st.sampled_from(list(RecordType)), st.integers(0, 1000),
              st.binary(max_size=40)),
    max_size=20,
).map(lambda rs: [Record(r.type, t, r.data) for r, t in
                  zip(rs, sorted(r.t for r in rs), strict=True)])


@given(records_strategy)
def test_records_round_trip(records) -> None:
    assert list(terminal.records_decode(terminal.records_encode(records))) == records


def test_record_layout() -> None:
    encoded = terminal.record_encode(Record(RecordType.RESIZE, 258, b"80x24"))
    assert encoded == b"\x03" + (258).to_bytes(8, "big") + (5).to_bytes(4, "big") + b"80x24"


@pytest.mark.parametrize("data", [
    b"\x01" + bytes(8),  # truncated header
    b"\x01" + bytes(8) + (5).to_bytes(4, "big") + b"abc",  # runs past the end
    b"\x09" + bytes(12),  # unknown type
    terminal.records_encode([Record(RecordType.OUTPUT, 5, b""), Record(RecordType.OUTPUT, 4, b"")]),
])
def test_malformed_records(data: bytes) -> None:
    with pytest.raises(errors.MalformedRecord):
        list(terminal.records_decode(data))


def test_guacd_typescript_to_records() -> None:
    with open(f"{FIXTURES}/guacd-ssh-short.typescript", "rb") as ts, \
            open(f"{FIXTURES}/guacd-ssh-short.typescript.timing") as tm:
        records = list(terminal.records_from_typescript(ts, tm))
    output = b"".join(r.data for r in records if r.type is RecordType.OUTPUT)
    with open(f"{FIXTURES}/guacd-ssh-short.typescript", "rb") as ts:
        original = ts.read()
    assert output == original[len(b"[BEGIN TYPESCRIPT]\n"):][:len(output)]
    assert len(output) == 1148
    assert records[0].t == 228
    assert [r.t for r in records] == sorted(r.t for r in records)


def test_typescript_round_trip_through_timing() -> None:
    records = [Record(RecordType.RESIZE, 0, b"100x30"), Record(RecordType.OUTPUT, 10, b"ab"),
               Record(RecordType.INPUT, 20, b"x"), Record(RecordType.OUTPUT, 1510, b"cd")]
    tys, tm = io.BytesIO(), io.StringIO()
    assert terminal.records_to_typescript(records, tys, tm) == 4
    assert tm.getvalue() == "0.010000 2\n1.500000 2\n"
    tys.seek(0)
    back = list(terminal.records_from_typescript(tys, io.StringIO(tm.getvalue())))
    assert [(r.type, r.t, r.data) for r in back] == [
        (RecordType.OUTPUT, 10, b"ab"), (RecordType.OUTPUT, 1510, b"cd")]


def test_advanced_timing_and_header_size() -> None:
    tys = io.BytesIO(b'Script started on x [COLUMNS="120" LINES="40"]\nhelloIN')
    timing = io.StringIO("H 0.000000 COLUMNS 120\nO 0.5 5\nS 0.5 SIGWINCH ROWS=50 COLS=132\n"
                         "I 0.25 2\n")
    records = list(terminal.records_from_typescript(tys, timing))
    assert records == [
        Record(RecordType.RESIZE, 0, b"120x40"), Record(RecordType.OUTPUT, 500, b"hello"),
        Record(RecordType.RESIZE, 1000, b"132x50"), Record(RecordType.INPUT, 1250, b"IN")]


def test_asciicast_both_ways() -> None:
    cast = io.StringIO(
        '{"version": 2, "width": 100, "height": 30}\n[0.5, "o", "h\\u00e9"]\n'
        '[1.0, "i", "q"]\n[1.25, "r", "90x20"]\n[2, "m", "chapter"]\n[3, "x", "?"]\n'
    )
    records = list(terminal.records_from_asciicast(cast))
    assert records == [
        Record(RecordType.RESIZE, 0, b"100x30"), Record(RecordType.OUTPUT, 500, "hé".encode()),
        Record(RecordType.INPUT, 1000, b"q"), Record(RecordType.RESIZE, 1250, b"90x20"),
        Record(RecordType.MARKER, 2000, b"chapter")]
    # Split a UTF-8 character across two records: it must survive.
    split = [*records[:1], Record(RecordType.OUTPUT, 500, b"h\xc3"),
             Record(RecordType.OUTPUT, 600, b"\xa9")]
    out = io.StringIO()
    terminal.records_to_asciicast(split, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {"version": 2, "width": 100, "height": 30}
    assert "".join(event[2] for event in lines[1:] if event[1] == "o") == "hé"


def test_asciicast_v3_intervals() -> None:
    cast = io.StringIO('{"version": 3, "term": {"cols": 80, "rows": 24}}\n'
                       '[0.5, "o", "a"]\n[0.25, "o", "b"]\n')
    assert [r.t for r in terminal.records_from_asciicast(cast)] == [0, 500, 750]


def screen_state(emulator_screen):
    screen = emulator_screen
    cells = [[screen.buffer[y][x] for x in range(screen.columns)] for y in range(screen.lines)]
    return cells, (screen.cursor.x, screen.cursor.y), screen.cursor.attrs


SAMPLES = [
    b"plain text\r\nsecond line",
    b"\x1b[1;31mbold red\x1b[0m normal \x1b[44;97mblue bg\x1b[0m",
    "wide 日本語 and é combining e\u0301".encode(),
    b"\x1b[38;5;208m256\x1b[38;2;1;2;3mtrue\x1b[7mrev",
    b"\x1b[2J\x1b[10;20Hmoved\x1b[?25l",
    b"".join(b"line %d\r\n" % i for i in range(100)),
    b"x" * 200,
    b"\x1b[5;10rscroll region\x1b[?7lno wrap" + b"y" * 100,
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_keyframe_reproduces_screen(sample: bytes) -> None:
    emulator = terminal.TerminalEmulator(80, 24)
    emulator.feed(Record(RecordType.OUTPUT, 0, sample))
    fresh = terminal.TerminalEmulator(80, 24)
    fresh.feed(Record(RecordType.KEYFRAME, 0, emulator.keyframe()))
    assert screen_state(fresh.screen) == screen_state(emulator.screen)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(SAMPLES + [b"\r\n", b"\x1b[K", b"\x1b[H", b"\t", b"\x08"]),
                max_size=12))
def test_fast_screen_matches_pyte(chunks) -> None:
    """The ASCII fast path draws exactly what pyte's own draw would."""
    data = b"".join(chunks)
    emulator = terminal.TerminalEmulator(40, 10)
    emulator.feed(Record(RecordType.OUTPUT, 0, data))
    reference = pyte.Screen(40, 10)
    pyte.ByteStream(reference).feed(data)
    assert screen_state(emulator.screen) == screen_state(reference)


def test_resize_changes_keyframe_size() -> None:
    emulator = terminal.TerminalEmulator(80, 24)
    emulator.feed(Record(RecordType.RESIZE, 0, b"120x40"))
    assert emulator.size == (120, 40)
    emulator.feed(Record(RecordType.RESIZE, 0, b"99999x99999"))
    assert emulator.size == (terminal.MAX_COLUMNS, terminal.MAX_ROWS)
