"""Cutting a stream into sealed parts as its data arrives.

:class:`StreamSealer` keeps what a sealer must remember between parts — the
next ``seq``, the digest of the last part (``prev``), the unsealed buffer
and, for terminal streams, the screen — and emits sealed parts as soon as
they are known not to be the last one. It is used by the Celery sealer for
live sessions and by ``python -m keeperpam.cli seal`` for files.

Cutting rules (FORMAT.md §4, DESIGN.md "Seal"):

* every part holds at most 1 MiB of plaintext;
* ``terminal``: records never span parts, a part covers less than 10 s of
  session time, and each part after the first starts with a keyframe record;
* ``guac``: parts end just after a ``sync`` instruction (unless a single
  frame is larger than a part), and a part is cut after the first ``sync``
  that is 10 s or more past the part's start;
* ``typescript-zip``/``activity``: plain 1 MiB slices, ``t0``/``t1`` = 0 and
  the session duration.

A part is sealed only once data for the next one has arrived (or on
:meth:`StreamSealer.flush`), so :meth:`StreamSealer.close` always has
plaintext for the ``final`` part.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .parts import MAX_PLAINTEXT_BYTES, STREAMS, part_digest, part_seal
from .terminal import (
    DEFAULT_SIZE,
    MAX_CHUNK_BYTES,
    Record,
    RecordType,
    TerminalEmulator,
    record_encode,
    resize_record,
)

__all__ = ["MAX_PART_MS", "StreamSealer"]

MAX_PART_MS = 10_000


class StreamSealer:
    """Seal one stream of one recording, part by part.

    Feed terminal streams with :meth:`add_record`, the others with
    :meth:`add_bytes`; each call returns the parts it completed (possibly
    none), in order. Call :meth:`close` once at the end for the final part.
    """

    def __init__(
        self,
        *,
        recording: str,
        stream: str,
        record_public_keys: Sequence[ec.EllipticCurvePublicKey],
        signer_key: ed25519.Ed25519PrivateKey,
        terminal_size: tuple[int, int] = DEFAULT_SIZE,
        duration_ms: int = 0,
        max_part_bytes: int = MAX_PLAINTEXT_BYTES,
        max_part_ms: int = MAX_PART_MS,
        start_seq: int = 0,
        prev: str = "",
        start_t: int = 0,
        screen: bytes | None = None,
        guac_origin: int | None = None,
    ) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        if not 1024 <= max_part_bytes <= MAX_PLAINTEXT_BYTES:
            raise ValueError("max_part_bytes must be between 1 KiB and 1 MiB")
        if not record_public_keys:
            raise ValueError("sealing needs at least one record public key")
        self.recording = recording
        self.stream = stream
        # Resuming (a worker picking up a stream another one started): the next
        # seq, the digest of the last sealed part and, for terminal streams, the
        # screen at that point as a keyframe; guac needs its time origin.
        self.seq = start_seq
        self.prev = prev
        self.closed = False
        self._keys = tuple(record_public_keys)
        self._signer = signer_key
        self._max_bytes = max_part_bytes
        self._max_ms = max_part_ms
        self._duration = duration_ms
        self._buffer = bytearray()
        self._kf = 0
        self._t0: int | None = None
        self._t1 = start_t
        # terminal state
        self._emulator = TerminalEmulator(*terminal_size) if stream == "terminal" else None
        if self._emulator is not None and screen:
            self._emulator.feed(Record(RecordType.OUTPUT, start_t, screen))
        self._needs_keyframe = start_seq > 0
        #: (cols, rows) when the current part's keyframe was made: what a resumed
        #: sealer's emulator must be created with.
        self.keyframe_size: tuple[int, int] = (
            self._emulator.size if self._emulator is not None else terminal_size
        )
        # guac state
        self._scan = _GuacScanner() if stream == "guac" else None
        self._guac_origin: int | None = guac_origin
        self._syncs: list[tuple[int, int]] = []  # (stream offset of sync end, session ms)
        self._base = 0  # stream offset of self._buffer[0]
        self._last_time = start_t if stream == "guac" else 0
        self._part_time = self._last_time  # t1 of the previous guac part

    # --- common ------------------------------------------------------------------

    def _seal(self, plaintext: bytes, *, final: bool, t0: int, t1: int, kf: int) -> bytes:
        part = part_seal(
            plaintext=plaintext, recording=self.recording, stream=self.stream, seq=self.seq,
            final=final, t0=t0, t1=t1, prev=self.prev, kf=kf,
            record_public_keys=self._keys, signer_key=self._signer,
        )
        self.seq += 1
        self.prev = part_digest(part)
        return part

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("the stream is already closed")

    # --- terminal ----------------------------------------------------------------------

    def add_records(self, records: Iterable[Record]) -> Iterator[bytes]:
        """Add many records; yield parts as they are completed."""
        for record in records:
            yield from self.add_record(record)

    def add_record(self, record: Record) -> list[bytes]:
        """Add one terminal record; return the parts this completed.

        Oversized output/input records are split; records must not go back
        in time; keyframes are the sealer's to make and are refused.
        """
        self._check_open()
        if self._emulator is None:
            raise ValueError("add_record is for terminal streams")
        if record.type is RecordType.KEYFRAME:
            raise ValueError("keyframe records are generated by the sealer")
        if record.t < self._t1:
            raise ValueError(f"record time {record.t} goes back before {self._t1}")
        if len(record.data) > MAX_CHUNK_BYTES:
            if record.type not in (RecordType.OUTPUT, RecordType.INPUT):
                raise ValueError("resize and marker records must be small")
            sealed: list[bytes] = []
            for start in range(0, len(record.data), MAX_CHUNK_BYTES):
                chunk = Record(record.type, record.t, record.data[start : start + MAX_CHUNK_BYTES])
                sealed += self.add_record(chunk)
            return sealed
        sealed = []
        encoded = record_encode(record)
        if self._buffer and (
            len(self._buffer) + len(encoded) > self._max_bytes
            or record.t - (self._t0 or 0) >= self._max_ms
        ):
            sealed.append(self._seal_terminal(final=False))
        if self._needs_keyframe:
            self._start_with_keyframe(record.t)
        if self._t0 is None:
            self._t0 = record.t
        self._buffer += encoded
        self._t1 = record.t
        self._emulator.feed(record)
        return sealed

    def _start_with_keyframe(self, t: int) -> None:
        if self._emulator is None:
            raise ValueError("keyframes exist only in terminal streams")
        self.keyframe_size = self._emulator.size
        keyframe = record_encode(Record(RecordType.KEYFRAME, t, self._emulator.keyframe()))
        self._buffer += keyframe
        self._kf = len(keyframe)
        self._t0 = t
        self._needs_keyframe = False

    def _seal_terminal(self, *, final: bool) -> bytes:
        part = self._seal(bytes(self._buffer), final=final, t0=self._t0 or 0, t1=self._t1,
                          kf=self._kf)
        self._buffer.clear()
        self._kf, self._t0 = 0, None
        self._needs_keyframe = True
        return part

    # --- bytes streams ------------------------------------------------------------------

    def add_bytes(self, data: bytes) -> list[bytes]:
        """Add raw bytes of a guac, typescript-zip or activity stream; return completed parts."""
        self._check_open()
        if self._emulator is not None:
            raise ValueError("terminal streams take records (add_record)")
        sealed: list[bytes] = []
        if self._scan is None:
            view = memoryview(data)
            while view:
                if len(self._buffer) == self._max_bytes:
                    sealed.append(self._seal_slice(len(self._buffer), final=False))
                room = self._max_bytes - len(self._buffer)
                self._buffer += view[:room]
                view = view[room:]
            return sealed
        for offset in range(0, len(data), MAX_CHUNK_BYTES):
            sealed += self._add_guac(data[offset : offset + MAX_CHUNK_BYTES])
        return sealed

    def _seal_slice(self, end: int, *, final: bool, t0: int = 0, t1: int | None = None) -> bytes:
        if t1 is None:
            t1 = self._duration
        part = self._seal(bytes(self._buffer[:end]), final=final, t0=t0, t1=t1, kf=0)
        del self._buffer[:end]
        return part

    def _add_guac(self, data: bytes) -> list[bytes]:
        if self._scan is None:
            raise ValueError("not a guac stream")
        self._buffer += data
        for end, timestamp in self._scan.feed(data):
            if self._guac_origin is None:
                self._guac_origin = timestamp
            # Session time is relative to the first sync and never goes back,
            # whatever clock jumps the recorder's timestamps show.
            t = max(timestamp - self._guac_origin, self._last_time)
            self._syncs.append((end, t))
            self._last_time = t
        sealed: list[bytes] = []
        while (cut := self._guac_cut()) is not None:
            sealed.append(self._seal_guac(cut, final=False))
        return sealed

    def _guac_cut(self) -> int | None:
        """Where to end the current guac part (buffer offset), or None to wait for more."""
        syncs, base = self._syncs, self._base
        if syncs:
            t0 = syncs[0][1]
            for index, (_end, t) in enumerate(syncs[1:], start=1):
                if t - t0 >= self._max_ms:
                    # Ending at the sync before keeps t1 - t0 under the limit.
                    return syncs[index - 1][0] - base
        if len(self._buffer) <= self._max_bytes:
            return None
        fitting = [end - base for end, _t in syncs if end - base <= self._max_bytes]
        # A frame bigger than a part has to be split mid-frame.
        return fitting[-1] if fitting else self._max_bytes

    def _seal_guac(self, end: int, *, final: bool) -> bytes:
        inside = [t for e, t in self._syncs if e - self._base <= end]
        t0 = inside[0] if inside else self._part_time
        t1 = inside[-1] if inside else t0
        part = self._seal_slice(end, final=final, t0=t0, t1=t1)
        self._base += end
        self._syncs = self._syncs[len(inside):]
        self._part_time = t1
        return part

    def pending_keyframe(self) -> bytes | None:
        """The data of the keyframe record that starts the unsealed buffer, if any.

        Right after a part is sealed this is the screen at the part boundary:
        what a resumed sealer is seeded with (``screen=``).
        """
        if not self._kf:
            return None
        return bytes(self._buffer[13 : self._kf])

    def resume_screen(self) -> tuple[bytes, tuple[int, int]]:
        """The screen (keyframe data) and terminal size the next part starts from.

        Valid right after a part is sealed (by :meth:`add_record` or :meth:`flush`):
        a sealer resumed at that boundary is created with these (``screen=``,
        ``terminal_size=``).
        """
        if self._emulator is None:
            raise ValueError("only terminal streams have a screen")
        if self._kf:
            return bytes(self._buffer[13 : self._kf]), self.keyframe_size
        return self._emulator.keyframe(), self._emulator.size

    @property
    def guac_origin(self) -> int | None:
        """The first sync timestamp (guac time origin), for resuming."""
        return self._guac_origin

    # --- live sessions and the end ------------------------------------------------------

    def flush(self, *, now_ms: int) -> list[bytes]:
        """Seal the current terminal part if it started ``max_part_ms`` or more before ``now_ms``.

        For live sessions that go quiet: the part is sealed (not final) even
        though no newer record has arrived.
        """
        self._check_open()
        if (
            self._emulator is not None
            and self._buffer
            and self._t0 is not None
            and now_ms - self._t0 >= self._max_ms
        ):
            return [self._seal_terminal(final=False)]
        return []

    def abandon(self) -> list[bytes]:
        """Seal whatever is buffered as a last *non-final* part and stop.

        For a recording whose source vanished: no part claims to be the end,
        so readers report the stream incomplete (FORMAT.md §5.5) yet can play
        everything that was received.
        """
        self._check_open()
        self.closed = True
        if not self._buffer:
            return []
        if self._emulator is not None:
            return [self._seal_terminal(final=False)]
        if self._scan is not None:
            return [self._seal_guac(len(self._buffer), final=False)]
        return [self._seal_slice(len(self._buffer), final=False)]

    @property
    def scan_broken(self) -> bool:
        """Whether a guac stream stopped parsing as Guacamole instructions."""
        return self._scan is not None and self._scan.broken

    def close(self) -> list[bytes]:
        """Seal the final part and return it (with any part still pending)."""
        self._check_open()
        self.closed = True
        if self._emulator is not None:
            if not self._buffer:
                if self.seq == 0:
                    # An empty session still needs a final part: record its size.
                    cols, rows = self._emulator.size
                    self._buffer += record_encode(resize_record(self._t1, cols, rows))
                    self._t0 = self._t1
                else:
                    self._start_with_keyframe(self._t1)
            return [self._seal_terminal(final=True)]
        if not self._buffer:
            raise ValueError(f"nothing to seal: the {self.stream} stream is empty")
        if self._scan is not None:
            return [self._seal_guac(len(self._buffer), final=True)]
        return [self._seal_slice(len(self._buffer), final=True)]


class _GuacScanner:
    """Incremental Guacamole instruction parser that reports ``sync`` instructions.

    Instructions are ``LEN.VALUE,LEN.VALUE,...;`` where LEN counts Unicode
    code points. :meth:`feed` yields ``(end_offset, timestamp)`` for every
    complete ``sync`` (offsets count every byte ever fed). Malformed input
    stops the scanning (the sealer then cuts by size only) rather than the
    sealing: a damaged recording is still sealed.
    """

    def __init__(self) -> None:
        self.broken = False
        self._pending = b""
        self._offset = 0  # stream offset of self._pending[0]

    def feed(self, data: bytes) -> Iterator[tuple[int, int]]:
        """Scan more bytes; yield each complete sync's end offset and timestamp."""
        if self.broken:
            return
        buf = self._pending + data
        pos = 0
        while True:
            try:
                parsed = _guac_instruction(buf, pos)
            except ValueError:
                self.broken, self._pending = True, b""
                return
            if parsed is None:
                break
            end, opcode, first_arg = parsed
            if opcode == b"sync" and first_arg is not None and first_arg.isdigit():
                yield self._offset + end, int(first_arg)
            pos = end
        self._pending = buf[pos:]
        self._offset += pos


def _guac_instruction(buf: bytes, pos: int) -> tuple[int, bytes, bytes | None] | None:
    """Parse one instruction at ``pos``; None if incomplete. Returns end, opcode, first arg."""
    elements: list[bytes] = []
    while True:
        dot = buf.find(b".", pos, pos + 12)
        if dot < 0:
            if len(buf) - pos >= 12:
                raise ValueError("malformed Guacamole instruction (no length prefix)")
            return None
        try:
            chars = int(buf[pos:dot])
        except ValueError as exc:
            raise ValueError("malformed Guacamole instruction length") from exc
        start = dot + 1
        end = _skip_code_points(buf, start, chars)
        if end is None or end >= len(buf):
            return None
        if len(elements) < 2:
            elements.append(buf[start:end])
        terminator = buf[end : end + 1]
        pos = end + 1
        if terminator == b";":
            return pos, elements[0], elements[1] if len(elements) > 1 else None
        if terminator != b",":
            raise ValueError("malformed Guacamole instruction (bad separator)")


def _skip_code_points(buf: bytes, start: int, count: int) -> int | None:
    """Byte offset after ``count`` UTF-8 code points from ``start``; None if past the end."""
    end = start + count
    if end <= len(buf) and buf[start:end].isascii():
        return end  # the common case: base64 blobs and numbers are ASCII
    pos = start
    for _ in range(count):
        if pos >= len(buf):
            return None
        lead = buf[pos]
        pos += 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return pos if pos <= len(buf) else None
