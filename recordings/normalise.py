"""Turning staged gateway input into stream plaintext, resumably.

Every source reads staged bytes from positions kept in ``Stream.sealer_state``
and yields ``(record, state_after)``: the state a later worker needs to carry
on right after that record. The sealer persists the state of the last record
before each part boundary, so a resumed worker re-reads only unsealed input.
Positions, times and sizes are metadata, never plaintext.

Typescript + timing follows :func:`keeperpam.crypto.terminal.records_from_typescript`
exactly (same header rule, same time rounding), asciicast v2/v3 follows
:func:`~keeperpam.crypto.terminal.records_from_asciicast`, so a sealed stream
decrypts to the records the offline converters produce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from keeperpam.crypto.terminal import (
    MAX_CHUNK_BYTES,
    Record,
    RecordType,
    asciicast_header_parse,
    resize_record,
)

from . import staging

_HEADER_SIZE = re.compile(rb'COLUMNS="(\d+)"\s+LINES="(\d+)"')
_ASCIICAST_TYPES = {"o": RecordType.OUTPUT, "i": RecordType.INPUT,
                    "r": RecordType.RESIZE, "m": RecordType.MARKER}
MAX_LINE = 1 << 20
MAX_HEADER = 65_536

State = dict[str, Any]


class InputError(ValueError):
    """The staged input is not what its format says (a clear error for the session)."""


class _Reader:
    """Sequential reader over an upload's staged bytes ``[start, end)``, in bounded blocks."""

    def __init__(self, upload, start: int, end: int) -> None:
        self.position = start
        self._blocks = staging.read(upload, start, end) if end > start else iter(())
        self._buffer = b""

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted:
            block = next(self._blocks, None)
            if block is None:
                return
            self._buffer += block

    def read(self, size: int) -> bytes:
        self._fill(size)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.position += len(data)
        return data

    def readline(self, limit: int) -> bytes | None:
        """One line with its ``\\n``; None if no complete line (within ``limit``) is staged."""
        searched = 0
        while True:
            newline = self._buffer.find(b"\n", searched)
            if newline >= 0:
                return self.read(newline + 1)
            if len(self._buffer) > limit:
                raise InputError(f"a line longer than {limit} bytes")
            searched = len(self._buffer)
            before = len(self._buffer)
            self._fill(before + 65_536)
            if len(self._buffer) == before:
                return None

    def rest(self) -> bytes:
        """Whatever is left (the last line without a newline), bounded."""
        self._fill(MAX_LINE + 1)
        if len(self._buffer) > MAX_LINE:
            raise InputError(f"a line longer than {MAX_LINE} bytes")
        return self.read(len(self._buffer))


def _chunks(kind: RecordType, t: int, data: bytes, done: int, before: State,
            after: State, *, position_key: str | None = None) -> Iterator[tuple[Record, State]]:
    """Yield ``data[done:]`` in records of at most 64 KiB; mid-line states carry ``ld``."""
    start = done
    while start < len(data):
        end = min(start + MAX_CHUNK_BYTES, len(data))
        if end == len(data):
            state = after
        else:
            state = dict(before, ld=end)
            if position_key is not None:
                state[position_key] = before[position_key] + (end - done)
        yield Record(kind, t, data[start:end]), state
        start = end


def typescript_records(typescript, timing, state: State, *,
                       final: bool) -> Iterator[tuple[Record, State]]:
    """Records from a typescript + timing pair, from ``state`` on, as far as staged input goes.

    Without ``final``, a timing line is used only once it is complete and the
    typescript holds all its bytes; with ``final`` a cut-short recording keeps
    what is there (like ``records_from_typescript``).
    """
    state = dict(state)
    ts = _Reader(typescript, state.get("ts", 0), typescript.offset)
    if not state.get("hdr"):
        header = ts.readline(MAX_HEADER)
        if header is None:
            if not final:
                return
            header = ts.rest()
        state.update(hdr=True, ts=ts.position)
        match = _HEADER_SIZE.search(header)
        size = (int(match[1]), int(match[2])) if match else None
        if size is not None:
            yield resize_record(0, *size), dict(state)
    tm = _Reader(timing, state.get("tm", 0), timing.offset)
    elapsed = float(state.get("el", 0.0))
    number = int(state.get("n", 0))
    while True:
        line_start = tm.position
        raw = tm.readline(4096)
        if raw is None:
            if not final:
                return
            raw = tm.rest()
            if not raw:
                return
        number += 1
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InputError(f"timing line {number} is not text") from exc
        fields = line.split()
        done = int(state.get("ld", 0))
        before = {**state, "tm": line_start, "el": elapsed, "n": number - 1}
        if not fields:
            state.update(tm=tm.position, n=number, ld=0)
            continue
        try:
            if fields[0][0].isdigit():
                kind, delay, rest = "O", float(fields[0]), fields[1:]
            else:
                kind, delay, rest = fields[0], float(fields[1]), fields[2:]
        except (ValueError, IndexError) as exc:
            # The line itself is not quoted: a mix-up could put recording text in it,
            # and this message is stored with the session.
            raise InputError(f"timing line {number} is not understood (expected "
                             "'DELAY BYTES' or 'O|I|S|H DELAY ...')") from exc
        if delay != delay or delay in (float("inf"), float("-inf")):
            raise InputError(f"timing line {number} has no usable delay")
        line_elapsed = elapsed + delay
        t = max(0, round(line_elapsed * 1000))
        if kind in ("O", "I"):
            try:
                length = int(rest[0])
            except (ValueError, IndexError) as exc:
                raise InputError(f"timing line {number} has no byte count") from exc
            if length < 0:
                raise InputError(f"timing line {number} has a negative byte count")
            available = typescript.offset - ts.position
            if available < length - done and not final:
                return  # wait for the typescript to catch up
            data = b"\0" * done + ts.read(length - done)
            after = {**state, "ts": ts.position, "tm": tm.position, "el": line_elapsed,
                     "n": number, "ld": 0}
            record_type = RecordType.OUTPUT if kind == "O" else RecordType.INPUT
            yield from _chunks(record_type, t, data, done, before, after, position_key="ts")
            state, elapsed = after, line_elapsed
            if len(data) < length:
                state["end"] = True
                return
            continue
        if kind == "S" and rest[:1] == ["SIGWINCH"]:
            values = dict(item.split("=", 1) for item in rest[1:] if "=" in item)
            state.update(tm=tm.position, el=line_elapsed, n=number, ld=0)
            elapsed = line_elapsed
            if "ROWS" in values and "COLS" in values:
                try:
                    yield resize_record(t, int(values["COLS"]), int(values["ROWS"])), dict(state)
                except ValueError as exc:
                    raise InputError(f"timing line {number} has a bad size") from exc
            continue
        state.update(tm=tm.position, el=line_elapsed, n=number, ld=0)
        elapsed = line_elapsed


def asciicast_records(upload, state: State, *, final: bool) -> Iterator[tuple[Record, State]]:
    """Records from an asciicast v2/v3 upload, from ``state`` on, one complete line at a time."""
    state = dict(state)
    reader = _Reader(upload, state.get("pos", 0), upload.offset)
    if not state.get("v"):
        header_line = reader.readline(MAX_HEADER)
        if header_line is None:
            if not final:
                return
            header_line = reader.rest()
        try:
            version, size = asciicast_header_parse(header_line)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        state.update(v=version, pos=reader.position, clock=0.0, last=0, n=1)
        if size is not None:
            yield resize_record(0, *size), dict(state)
    while True:
        line_start = reader.position
        raw = reader.readline(MAX_LINE)
        if raw is None:
            if not final:
                return
            raw = reader.rest()
            if not raw:
                return
        number = int(state.get("n", 1)) + 1
        done = int(state.get("ld", 0))
        before = {**state, "pos": line_start}
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            state.update(pos=reader.position, n=number, ld=0)
            continue
        try:
            time, code, data = json.loads(line)
            time = float(time)
        except (ValueError, TypeError) as exc:
            raise InputError(f"asciicast line {number} is not an event") from exc
        clock = float(state["clock"]) + time if state["v"] == 3 else time
        last = max(int(state["last"]), round(clock * 1000))
        after = {**state, "pos": reader.position, "clock": clock, "last": last, "n": number,
                 "ld": 0}
        kind = _ASCIICAST_TYPES.get(code)
        if kind is None or not isinstance(data, str):
            state = after
            continue
        payload = data.encode("utf-8", "surrogateescape")
        yield from _chunks(kind, last, payload, done, before, after)
        state = after
