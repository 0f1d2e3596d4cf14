"""Terminal records (FORMAT.md §4), converters and keyframes.

A terminal stream's plaintext is a sequence of records
``type (1) ‖ t (u64be, ms) ‖ len (u32be) ‖ data``. This module encodes and
decodes them and converts between records and the formats terminal
recordings come in or go out as:

* util-linux ``script`` / guacd typescripts with classic (``delay nbytes``)
  or advanced (``O delay nbytes`` …) timing files → records;
* asciicast v2 (and v3) → records;
* records → a ``.tys`` + ``.tm`` pair that ``scriptreplay`` replays;
* records → asciicast v2.

Everything streams: converters are generators over file objects and never
hold a whole recording in memory.

Keyframes come from :class:`TerminalEmulator`, a ``pyte`` screen whose
state is serialised as the bytes that redraw it on a fresh terminal.
"""

from __future__ import annotations

import codecs
import enum
import json
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

import pyte
from pyte import modes as pyte_modes

from .errors import MalformedRecord

__all__ = [
    "DEFAULT_SIZE",
    "RECORD_HEADER_BYTES",
    "Record",
    "RecordType",
    "TerminalEmulator",
    "record_encode",
    "records_decode",
    "records_encode",
    "records_from_asciicast",
    "records_from_typescript",
    "records_to_asciicast",
    "records_to_typescript",
]

RECORD_HEADER_BYTES = 13
_RECORD_HEADER = struct.Struct(">BQI")
DEFAULT_SIZE = (80, 24)
#: Converters cut output into records of at most this size so that a record
#: always fits in a part next to a keyframe.
MAX_CHUNK_BYTES = 65_536
_READ_BYTES = 65_536
_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")


class RecordType(enum.IntEnum):
    """Terminal record types (§4)."""

    OUTPUT = 1
    INPUT = 2
    RESIZE = 3
    MARKER = 4
    KEYFRAME = 5


@dataclass(frozen=True, slots=True)
class Record:
    """One terminal record: ``t`` is ms since session start."""

    type: RecordType
    t: int
    data: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(cols, rows) of a RESIZE record."""
        match = _SIZE.fullmatch(self.data.decode("ascii", "replace"))
        if self.type is not RecordType.RESIZE or match is None:
            raise ValueError("not a valid resize record")
        return int(match[1]), int(match[2])

    @property
    def encoded_size(self) -> int:
        """Bytes this record takes once encoded."""
        return RECORD_HEADER_BYTES + len(self.data)


def resize_record(t: int, cols: int, rows: int) -> Record:
    """Build a RESIZE record (data ``COLSxROWS``)."""
    return Record(RecordType.RESIZE, t, f"{cols}x{rows}".encode("ascii"))


def record_encode(record: Record) -> bytes:
    """Encode one record."""
    if not 0 <= record.t < 2**64 or len(record.data) >= 2**32:
        raise ValueError("record time or length out of range")
    return _RECORD_HEADER.pack(record.type, record.t, len(record.data)) + record.data


def records_encode(records: Iterable[Record]) -> bytes:
    """Encode records back to back."""
    return b"".join(record_encode(r) for r in records)


def records_decode(data: bytes, *, after: int = 0) -> Iterator[Record]:
    """Decode a part's worth of records.

    Raises :class:`MalformedRecord` for a truncated record, an unknown type
    or a time that goes backwards (``after`` is the last time seen before).
    """
    view = memoryview(data)
    offset, last_t = 0, after
    while offset < len(view):
        if len(view) - offset < RECORD_HEADER_BYTES:
            raise MalformedRecord(f"truncated record header at byte {offset}")
        kind, t, length = _RECORD_HEADER.unpack_from(view, offset)
        start = offset + RECORD_HEADER_BYTES
        if start + length > len(view):
            raise MalformedRecord(f"record at byte {offset} runs past the end of the part")
        try:
            record_type = RecordType(kind)
        except ValueError as exc:
            raise MalformedRecord(f"unknown record type {kind} at byte {offset}") from exc
        if t < last_t:
            raise MalformedRecord(f"record time goes backwards at byte {offset}")
        yield Record(record_type, t, bytes(view[start : start + length]))
        offset, last_t = start + length, t


def _chunked(kind: RecordType, t: int, data: bytes) -> Iterator[Record]:
    for start in range(0, len(data), MAX_CHUNK_BYTES):
        yield Record(kind, t, data[start : start + MAX_CHUNK_BYTES])


# --- typescript + timing → records -------------------------------------------------


_HEADER_SIZE = re.compile(rb'COLUMNS="(\d+)"\s+LINES="(\d+)"')


def records_from_typescript(
    typescript: BinaryIO,
    timing: TextIO,
    *,
    size: tuple[int, int] | None = None,
) -> Iterator[Record]:
    """Convert a typescript and its timing file to records.

    The typescript's first line is a header (``Script started on …`` or
    guacd's ``[BEGIN TYPESCRIPT]``) and is not output; bytes past what the
    timing file accounts for (the ``Script done …`` / ``[END TYPESCRIPT]``
    footer) are ignored, as ``scriptreplay`` does. Classic timing lines are
    ``delay nbytes``; advanced ones ``O|I delay nbytes``, ``S delay SIGWINCH
    ROWS=r COLS=c`` and ``H delay NAME VALUE`` (input bytes are read from the
    same file, as ``script --log-io`` writes them). A RESIZE record starts the
    stream when the size is known (``size`` or the header's COLUMNS/LINES).
    """
    header = typescript.readline(65_536)
    if size is None:
        match = _HEADER_SIZE.search(header)
        if match:
            size = (int(match[1]), int(match[2]))
    if size is not None:
        yield resize_record(0, *size)
    elapsed = 0.0
    for number, line in enumerate(timing, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if fields[0][0].isdigit():
                kind, delay, rest = "O", float(fields[0]), fields[1:]
            else:
                kind, delay, rest = fields[0], float(fields[1]), fields[2:]
        except (ValueError, IndexError) as exc:
            raise ValueError(f"timing line {number} is not understood: {line!r}") from exc
        elapsed += delay
        t = max(0, round(elapsed * 1000))
        if kind in ("O", "I"):
            try:
                length = int(rest[0])
            except (ValueError, IndexError) as exc:
                raise ValueError(f"timing line {number} has no byte count") from exc
            data = typescript.read(length)
            if data:
                record_type = RecordType.OUTPUT if kind == "O" else RecordType.INPUT
                yield from _chunked(record_type, t, data)
            if len(data) < length:
                return  # a recording cut short: keep what is there
        elif kind == "S" and rest[:1] == ["SIGWINCH"]:
            values = dict(item.split("=", 1) for item in rest[1:] if "=" in item)
            if "ROWS" in values and "COLS" in values:
                yield resize_record(t, int(values["COLS"]), int(values["ROWS"]))
        # H (header) and other signals carry nothing a player needs.


def stream_records(opened: Iterable) -> Iterator[Record]:
    r"""The records of a terminal stream opened from seq 0 (``OpenedPart``\ s, in order).

    Each part's keyframe repeats what the parts before it drew, so reading
    continuously skips them (``part.body`` is the plaintext after the keyframe).
    """
    last_t = 0
    for part in opened:
        for record in records_decode(part.body, after=last_t):
            last_t = record.t
            yield record


# --- asciicast → records ---------------------------------------------------------------

_ASCIICAST_TYPES = {
    "o": RecordType.OUTPUT,
    "i": RecordType.INPUT,
    "r": RecordType.RESIZE,
    "m": RecordType.MARKER,
}


def asciicast_header_parse(line: str | bytes) -> tuple[int, tuple[int, int] | None]:
    """The version (2 or 3) and terminal size, if given, of an asciicast header line.

    Raises ValueError for a header that is not JSON or of another version.
    """
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise ValueError("asciicast header is not JSON") from exc
    version = header.get("version") if isinstance(header, dict) else None
    if version == 2:
        cols, rows = header.get("width"), header.get("height")
    elif version == 3:
        term = header.get("term") or {}
        cols, rows = term.get("cols"), term.get("rows")
    else:
        raise ValueError(f"unsupported asciicast version {version!r}")
    size = (cols, rows) if isinstance(cols, int) and isinstance(rows, int) else None
    return version, size


def records_from_asciicast(source: TextIO) -> Iterator[Record]:
    """Convert an asciicast v2 (or v3) recording to records.

    The header's size becomes a RESIZE record at t=0; ``o``/``i``/``r``/``m``
    events map to OUTPUT/INPUT/RESIZE/MARKER; other event codes are skipped.
    """
    version, size = asciicast_header_parse(source.readline())
    if size is not None:
        yield resize_record(0, *size)
    clock, last_t = 0.0, 0
    for number, line in enumerate(source, start=2):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            time, code, data = json.loads(line)
            time = float(time)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"asciicast line {number} is not an event") from exc
        # v2 times are absolute, v3 times are intervals since the last event.
        clock = clock + time if version == 3 else time
        last_t = max(last_t, round(clock * 1000))
        kind = _ASCIICAST_TYPES.get(code)
        if kind is None or not isinstance(data, str):
            continue
        yield from _chunked(kind, last_t, data.encode("utf-8", "surrogateescape"))


# --- records → typescript / asciicast --------------------------------------------------


def records_to_typescript(
    records: Iterable[Record],
    typescript: BinaryIO,
    timing: TextIO,
    *,
    header_line: str = "Script started [keeperpam sealed recording]",
) -> int:
    """Write OUTPUT records as a typescript (header line + bytes) and classic timing.

    ``scriptreplay --timing TIMING TYPESCRIPT`` replays the result. Keyframes,
    input, resizes and markers are not part of a classic typescript and are
    skipped. Returns the number of output bytes written.
    """
    typescript.write(header_line.encode("utf-8").replace(b"\n", b" ") + b"\n")
    last_t, total = 0, 0
    for record in records:
        if record.type is not RecordType.OUTPUT or not record.data:
            continue
        delay = max(0, record.t - last_t) / 1000
        timing.write(f"{delay:.6f} {len(record.data)}\n")
        typescript.write(record.data)
        last_t, total = max(last_t, record.t), total + len(record.data)
    return total


def records_to_asciicast(
    records: Iterable[Record],
    out: TextIO,
    *,
    size: tuple[int, int] | None = None,
    timestamp: int | None = None,
) -> None:
    """Write records as an asciicast v2 file.

    The header size is ``size``, else that of a RESIZE record seen before any
    output, else 80x24. Output and input are decoded as UTF-8 incrementally,
    so characters split across records survive. Keyframes are skipped.
    """
    pending: list[Record] = []
    iterator = iter(records)
    if size is None:
        for record in iterator:
            pending.append(record)
            if record.type is RecordType.RESIZE:
                size = record.size
                break
            if record.type in (RecordType.OUTPUT, RecordType.INPUT):
                break
    cols, rows = size or DEFAULT_SIZE
    header: dict[str, object] = {"version": 2, "width": cols, "height": rows}
    if timestamp is not None:
        header["timestamp"] = timestamp
    out.write(json.dumps(header) + "\n")
    decoders = {
        RecordType.OUTPUT: codecs.getincrementaldecoder("utf-8")("replace"),
        RecordType.INPUT: codecs.getincrementaldecoder("utf-8")("replace"),
    }
    codes = {RecordType.OUTPUT: "o", RecordType.INPUT: "i", RecordType.RESIZE: "r",
             RecordType.MARKER: "m"}
    for record in _chain(pending, iterator):
        code = codes.get(record.type)
        if code is None:
            continue
        decoder = decoders.get(record.type)
        text = (
            decoder.decode(record.data)
            if decoder
            else record.data.decode("utf-8", "replace")
        )
        if text or code == "m":
            out.write(json.dumps([round(record.t / 1000, 6), code, text]) + "\n")


def _chain(first: list[Record], rest: Iterator[Record]) -> Iterator[Record]:
    yield from first
    yield from rest


# --- keyframes ---------------------------------------------------------------------------

_FG_CODES = {name: 30 + i for i, name in enumerate(
    ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"])}
_BRIGHT_CODES = {"bright" + name: 90 + i for i, name in enumerate(
    ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"])}
_BRIGHT_CODES["bfightmagenta"] = 95  # pyte's spelling of 105 (bright magenta bg)
_HEX_COLOUR = re.compile(r"[0-9a-f]{6}")
_FLAG_CODES = (("bold", 1), ("italics", 3), ("underscore", 4), ("blink", 5),
               ("reverse", 7), ("strikethrough", 9))
#: Keyframes larger than this fall back to plain text so they fit in a part.
MAX_KEYFRAME_BYTES = 512 * 1024
#: The emulator refuses to track absurd sizes (a hostile resize must not make
#: the sealer allocate gigabytes); larger terminals are clipped.
MAX_COLUMNS, MAX_ROWS = 1000, 500


def _colour(value: str, *, background: bool) -> list[int]:
    offset = 10 if background else 0
    if value in _FG_CODES:
        return [_FG_CODES[value] + offset]
    if value in _BRIGHT_CODES:
        return [_BRIGHT_CODES[value] + offset]
    if _HEX_COLOUR.fullmatch(value):
        return [38 + offset, 2, int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)]
    return []  # "default"


def _sgr(char: pyte.screens.Char) -> bytes:
    params = [0]
    params += _colour(char.fg, background=False)
    params += _colour(char.bg, background=True)
    params += [code for name, code in _FLAG_CODES if getattr(char, name)]
    return b"\x1b[" + ";".join(map(str, params)).encode("ascii") + b"m"


#: Characters that each take exactly one cell (printable ASCII, Latin-1,
#: Latin Extended, IPA), before the combining marks at U+0300.
_SINGLE_WIDTH = re.compile("[ -~\u00a0-\u02ff]*")


class _CellCache(dict[str, "pyte.screens.Char"]):
    """Maps a character to its cell in one style, building cells on first use."""

    def __init__(self, style: pyte.screens.Char) -> None:
        super().__init__()
        self.style = style

    def __missing__(self, char: str) -> pyte.screens.Char:
        cell = self[char] = self.style._replace(data=char)
        return cell


class _FastScreen(pyte.Screen):
    """A pyte screen with a fast path for runs of printable ASCII.

    pyte draws one character at a time with a width lookup each, about
    1 MB/s; plain ASCII runs are most of a terminal session, and writing them
    a row slice at a time gives the same screen several times faster.
    """

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self._cells: dict[pyte.screens.Char, _CellCache] = {}

    def draw(self, data: str) -> None:
        translated = data.translate(self.g1_charset if self.charset else self.g0_charset)
        if (
            not _SINGLE_WIDTH.fullmatch(translated)
            or pyte_modes.IRM in self.mode
            or pyte_modes.DECAWM not in self.mode
        ):
            super().draw(data)
            return
        cursor, columns = self.cursor, self.columns
        cells = self._cells.get(cursor.attrs)
        if cells is None:
            if len(self._cells) > 256:
                self._cells.clear()
            cells = self._cells[cursor.attrs] = _CellCache(cursor.attrs)
        start, length = 0, len(translated)
        while start < length:
            if cursor.x >= columns:
                self.dirty.add(cursor.y)
                self.carriage_return()
                self.linefeed()
            take = min(length - start, columns - cursor.x)
            chunk = translated[start : start + take]
            self.buffer[cursor.y].update(
                zip(range(cursor.x, cursor.x + take), map(cells.__getitem__, chunk), strict=True)
            )
            cursor.x += take
            start += take
        self.dirty.add(cursor.y)


class TerminalEmulator:
    """Tracks a terminal's screen from records and produces keyframes."""

    def __init__(self, cols: int = DEFAULT_SIZE[0], rows: int = DEFAULT_SIZE[1]) -> None:
        self.screen = _FastScreen(*self._clip(cols, rows))
        self._stream = pyte.ByteStream(self.screen)

    @staticmethod
    def _clip(cols: int, rows: int) -> tuple[int, int]:
        return max(1, min(cols, MAX_COLUMNS)), max(1, min(rows, MAX_ROWS))

    @property
    def size(self) -> tuple[int, int]:
        """Current (cols, rows)."""
        return self.screen.columns, self.screen.lines

    def feed(self, record: Record) -> None:
        """Apply OUTPUT, RESIZE and KEYFRAME records; others do not change the screen."""
        if record.type in (RecordType.OUTPUT, RecordType.KEYFRAME):
            self._stream.feed(record.data)
        elif record.type is RecordType.RESIZE:
            try:
                cols, rows = record.size
            except ValueError:
                return  # a garbled resize is ignored, as a terminal would
            cols, rows = self._clip(cols, rows)
            self.screen.resize(lines=rows, columns=cols)

    def keyframe(self) -> bytes:
        """Bytes that redraw the current screen on a fresh terminal of the current size."""
        frame = self._render(attributes=True)
        if len(frame) > MAX_KEYFRAME_BYTES:
            frame = self._render(attributes=False)
        return frame[:MAX_KEYFRAME_BYTES]

    def _render(self, *, attributes: bool) -> bytes:
        screen = self.screen
        default = screen.default_char
        out = [b"\x1b[0m\x1b[H\x1b[2J"]
        for y in range(screen.lines):
            line = screen.buffer[y]
            xs = [x for x in line if x < screen.columns]
            if not xs:
                continue
            # Trailing blanks in the default style are what "clear" left.
            end = max(xs) + 1
            while end > 0 and line[end - 1] == default:
                end -= 1
            if end == 0:
                continue
            out.append(f"\x1b[{y + 1};1H".encode("ascii"))
            style = None
            for x in range(end):
                char = line[x]
                if char.data == "":
                    continue  # right half of a wide character
                if attributes:
                    char_style = char._replace(data=" ")
                    if char_style != style:
                        out.append(_sgr(char))
                        style = char_style
                out.append(char.data.encode("utf-8", "replace"))
        out.append(b"\x1b[0m")
        if screen.margins is not None:
            out.append(f"\x1b[{screen.margins.top + 1};{screen.margins.bottom + 1}r".encode())
        if pyte_modes.DECAWM not in screen.mode:
            out.append(b"\x1b[?7l")
        if pyte_modes.IRM in screen.mode:
            out.append(b"\x1b[4h")
        cursor = screen.cursor
        x = min(cursor.x, screen.columns - 1)
        out.append(f"\x1b[{cursor.y + 1};{x + 1}H".encode("ascii"))
        last = screen.buffer[cursor.y][x]
        if cursor.x >= screen.columns and len(last.data) == 1:
            # The cursor sits past the last column ("pending wrap"): redraw
            # the last cell so the next character wraps (or not) as it would.
            out.append(_sgr(last) if attributes else b"")
            out.append(last.data.encode("utf-8", "replace"))
        if attributes:
            out.append(_sgr(cursor.attrs))
        if cursor.hidden:
            out.append(b"\x1b[?25l")
        return b"".join(out)
