"""The sealer: staged input → sealed parts in storage, resumably and exactly once.

Each call works in batches. A batch locks the stream row (``select_for_update``,
so two workers never seal the same range), rebuilds a
:class:`~keeperpam.crypto.sealer.StreamSealer` from the stream's persisted
state (next seq, prev digest, time, guac origin; for terminal streams the
screen at the last boundary, kept as a keyframe in staging), re-reads the
unsealed input from staging, stores every completed part and its
:class:`~recordings.models.Part` row, and advances the state — all in one
transaction. A worker killed mid-batch rolls the batch back: the next run
seals the same range again (objects are overwritten by name), so no part is
lost or duplicated. Memory is bounded by the batch size, not the recording.

Terminal streams also append each sealed record to a staged typescript pair
(``.tys``/``.tm``) that is packaged into the ``typescript-zip`` stream at the
end; its lengths are part of the stream state so a rolled-back batch's bytes
are cut off again.

Incomplete sessions (the gateway vanished): everything staged is sealed, the
last part without ``final`` — readers then report the stream incomplete
(FORMAT.md §5.5) while playing all of it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from keeperpam.crypto import keys as crypto_keys
from keeperpam.crypto.parts import part_digest, part_parse
from keeperpam.crypto.sealer import StreamSealer
from keeperpam.crypto.terminal import DEFAULT_SIZE, Record, RecordType

from . import normalise, staging
from .choices import SessionStatus, StreamKind, StreamState, UploadFormat
from .models import Part, Session, Stream, Upload

logger = logging.getLogger(__name__)

#: Staged input read per batch (and per transaction).
BATCH_BYTES = 8 << 20
TYS_HEADER = b"Script started [keeperpam sealed recording]\n"


class SealingFailed(Exception):
    """The input cannot be sealed (malformed); the stream and session get this message."""


def part_storage_name(stream: Stream, seq: int) -> str:
    return f"recordings/{stream.recording_id}/{stream.kind}/{seq:06d}.ksr"


def _store(stream: Stream, part: bytes) -> Part:
    header = part_parse(part).header
    name = part_storage_name(stream, header.seq)
    # A rolled-back batch may have left an object under this name: replace it.
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, ContentFile(part))
    if saved != name:
        raise RuntimeError(f"storage saved {name} as {saved}")
    return Part.objects.create(
        stream=stream, seq=header.seq, t0=header.t0, t1=header.t1, final=header.final,
        kf=header.kf, size=len(part), sha256=part_digest(part), storage_name=name,
    )


def _keys(stream: Stream):
    recording = stream.recording
    public = crypto_keys.require_p256_public(serialization.load_der_public_key(
        crypto_keys.b64u_decode(recording.record_key.public_key)))
    from .services import signer_key_ensure

    signer_key, signer = signer_key_ensure()
    if recording.signer_id is None:
        recording.signer = signer
        recording.save(update_fields=["signer"])
    return [public], signer_key


def _screen_file(stream: Stream, seq: int):
    return staging.private_file(stream.recording.session_id, f"screen-{stream.pk}-{seq}")


def _typescript_files(stream: Stream):
    session_id = stream.recording.session_id
    return (staging.private_file(session_id, f"zip-{stream.pk}.tys"),
            staging.private_file(session_id, f"zip-{stream.pk}.tm"))


@dataclass
class _Batch:
    """What one batch sealed, and the state to persist with it."""

    parts: list[bytes] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    progressed: bool = False
    closed: bool = False
    #: upload pk -> new consumed offset, written last (see _apply)
    consumed: dict = field(default_factory=dict)


def _sealer(stream: Stream, *, size: tuple[int, int] | None = None,
            screen: bytes | None = None, stream_name: str | None = None) -> StreamSealer:
    public_keys, signer_key = _keys(stream)
    state = stream.sealer_state
    return StreamSealer(
        recording=str(stream.recording_id), stream=stream_name or stream.kind,
        record_public_keys=public_keys, signer_key=signer_key,
        terminal_size=size or tuple(state.get("size", DEFAULT_SIZE)),
        start_seq=stream.next_seq, prev=stream.prev, start_t=stream.last_t, screen=screen,
        guac_origin=state.get("origin"),
        duration_ms=stream.recording.session.duration_ms or 0,
    )


# ------------------------------------------------------------------ guac


def _guac_batch(stream: Stream, *, final: bool, incomplete: bool) -> _Batch:
    upload = stream.uploads.filter(format=UploadFormat.GUAC).first()
    batch = _Batch(state=dict(stream.sealer_state))
    start = upload.consumed if upload else 0
    available = upload.offset if upload else 0
    end = min(available, start + BATCH_BYTES)
    sealer = _sealer(stream)
    consumed = start
    if end > start:
        for block in staging.read(upload, start, end):
            for part in sealer.add_bytes(block):
                batch.parts.append(part)
                consumed += part_parse(part).header.n - 16
    if sealer.scan_broken:
        batch.state["warning"] = "The .guac upload is not valid Guacamole protocol; " \
            "it was sealed by size."
    if final and end == available:
        if sealer._buffer or sealer.seq == 0:  # noqa: SLF001 - only the sealer knows
            if not sealer._buffer:  # noqa: SLF001
                raise SealingFailed("The graphical recording is empty: nothing was uploaded.")
            tail = sealer.abandon() if incomplete else sealer.close()
        else:
            # Everything already went into parts; a final part needs bytes, so the
            # last one stays as is and the stream is marked by its state.
            tail = []
        batch.parts += tail
        consumed = available
        batch.closed = True
    if batch.parts:
        last = part_parse(batch.parts[-1]).header
        batch.state["origin"] = sealer.guac_origin
        batch.state["t1"] = last.t1
    if upload is not None and consumed != upload.consumed:
        batch.consumed[upload.pk] = consumed
        batch.progressed = True
    batch.progressed = batch.progressed or bool(batch.parts)
    return batch


# ------------------------------------------------------------------ terminal


def _terminal_source(stream: Stream, state: dict, *, final: bool):
    uploads = {u.format: u for u in stream.uploads.all()}
    if UploadFormat.ASCIICAST in uploads:
        return uploads, normalise.asciicast_records(uploads[UploadFormat.ASCIICAST], state,
                                                    final=final)
    typescript, timing = uploads.get(UploadFormat.TYPESCRIPT), uploads.get(UploadFormat.TIMING)
    if typescript is None or timing is None:
        if final and (typescript or timing):
            raise SealingFailed("A typescript needs its timing file (and the other way round).")
        return uploads, iter(())
    return uploads, normalise.typescript_records(typescript, timing, state, final=final)


def _append_typescript(stream: Stream, records: list[Record], state: dict) -> None:
    tys_path, tm_path = _typescript_files(stream)
    last = int(state.get("zt", 0))
    with open(tys_path, "ab") as tys, open(tm_path, "ab") as tm:
        if tys.tell() == 0:
            tys.write(TYS_HEADER)
        for record in records:
            if record.type is not RecordType.OUTPUT or not record.data:
                continue
            tm.write(f"{max(0, record.t - last) / 1000:.6f} {len(record.data)}\n".encode())
            tys.write(record.data)
            last = max(last, record.t)
        tys.flush()
        tm.flush()
        os.fsync(tys.fileno())
        os.fsync(tm.fileno())
        state.update(zt=last, tysn=tys.tell(), tmn=tm.tell())


def _truncate_typescript(stream: Stream) -> None:
    """Cut the staged typescript pair back to what committed batches wrote."""
    state = stream.sealer_state
    for path, key in zip(_typescript_files(stream), ("tysn", "tmn"), strict=True):
        if path.exists():
            with open(path, "r+b") as handle:
                handle.truncate(int(state.get(key, 0)))


def _terminal_batch(stream: Stream, *, final: bool, incomplete: bool,
                    flush_now_ms: int | None = None) -> _Batch:
    state = dict(stream.sealer_state)
    batch = _Batch(state=state)
    _truncate_typescript(stream)
    screen = None
    if stream.next_seq > 0:
        path = _screen_file(stream, stream.next_seq)
        screen = path.read_bytes() if path.exists() else b""
    sealer = _sealer(stream, screen=screen)
    try:
        uploads, source = _terminal_source(stream, state.get("src", {}), final=final)
    except normalise.InputError as exc:
        raise SealingFailed(str(exc)) from exc
    budget = BATCH_BYTES
    pending: list[Record] = []
    boundary_src = state.get("src", {})
    last_src = boundary_src
    exhausted = True
    try:
        for record, src_after in source:
            parts = sealer.add_record(record)
            if parts:
                batch.parts += parts
                _append_typescript(stream, pending, state)
                pending = []
                boundary_src = last_src
                kf = sealer.pending_keyframe() or b""
                batch.state.update(size=list(sealer.keyframe_size), src=boundary_src,
                                   t=record.t)
                staging.atomic_write(_screen_file(stream, sealer.seq), kf)
            pending.append(record)
            last_src = src_after
            budget -= len(record.data) + 13
            if budget <= 0 and batch.parts:
                exhausted = False
                break
    except normalise.InputError as exc:
        raise SealingFailed(str(exc)) from exc
    if flush_now_ms is not None and not final and exhausted:
        # A quiet session: seal what is pending once its part is old enough, so
        # watchers see it within seconds and parts stay under 10 s of session time.
        flushed = sealer.flush(now_ms=flush_now_ms)
        if flushed:
            batch.parts += flushed
            _append_typescript(stream, pending, state)
            pending = []
            screen, size = sealer.resume_screen()
            batch.state.update(size=list(size), src=last_src,
                               t=part_parse(flushed[-1]).header.t1)
            staging.atomic_write(_screen_file(stream, sealer.seq), screen)
    if final and exhausted:
        if incomplete:
            tail = sealer.abandon()
        else:
            tail = sealer.close()
        batch.parts += tail
        _append_typescript(stream, pending, state)
        batch.state.update(src=last_src, done=True)
        batch.closed = True
    if batch.parts:
        last = part_parse(batch.parts[-1]).header
        batch.state["t1"] = last.t1
        batch.progressed = True
        _consume(uploads, batch.state.get("src", {}), batch)
    return batch


def _consume(uploads: dict, src: dict, batch: _Batch) -> None:
    """Note how far each upload is sealed (staged chunks before that can go)."""
    positions = {UploadFormat.TYPESCRIPT: src.get("ts"), UploadFormat.TIMING: src.get("tm"),
                 UploadFormat.ASCIICAST: src.get("pos")}
    for fmt, upload in uploads.items():
        position = positions.get(fmt)
        if position is not None and position != upload.consumed:
            batch.consumed[upload.pk] = position


# ------------------------------------------------------------------ driving


def _apply(stream: Stream, batch: _Batch, *, incomplete: bool) -> None:
    for part in batch.parts:
        _store(stream, part)
        header = part_parse(part).header
        stream.next_seq, stream.prev = header.seq + 1, part_digest(part)
        stream.last_t = header.t1
    stream.sealer_state = batch.state
    if batch.closed:
        stream.state = StreamState.INCOMPLETE if incomplete else StreamState.SEALED
    stream.error = batch.state.get("warning", "")
    stream.save(update_fields=["next_seq", "prev", "last_t", "sealer_state", "state", "error",
                               "updated_at"])
    # Last, so the upload rows (which gateway PATCHes lock) are held only until commit.
    for upload_pk, consumed in batch.consumed.items():
        Upload.objects.filter(pk=upload_pk).update(consumed=consumed)


def _lock(stream_id: int) -> Stream:
    return (Stream.objects.select_for_update(of=("self",))
            .select_related("recording__record_key", "recording__session").get(pk=stream_id))


def stream_advance(*, stream_id: int, final: bool = False, incomplete: bool = False,
                   flush_now_ms: int | None = None) -> None:
    """Seal what is staged for a stream, batch by batch; with ``final``, finish it.

    With ``flush_now_ms`` (the session time now), a terminal stream's pending
    part is sealed too if it started 10 s or more before then (see
    :meth:`StreamSealer.flush`); the final part is still never empty, since
    :meth:`StreamSealer.close` starts it with a keyframe.

    Idempotent: a sealed stream is left alone, and a batch that finds nothing
    new changes nothing.
    """
    while True:
        with transaction.atomic():
            stream = _lock(stream_id)
            if stream.state != StreamState.OPEN:
                return
            old_seq = stream.next_seq
            try:
                if stream.kind == StreamKind.GUAC:
                    batch = _guac_batch(stream, final=final, incomplete=incomplete)
                else:
                    batch = _terminal_batch(stream, final=final, incomplete=incomplete,
                                            flush_now_ms=flush_now_ms)
            except SealingFailed as exc:
                Stream.objects.filter(pk=stream.pk).update(state=StreamState.FAILED,
                                                           error=str(exc))
                session = stream.recording.session
                Session.objects.filter(pk=session.pk).update(
                    error=f"{stream.kind} stream: {exc}")
                logger.warning("stream %s failed: %s", stream.pk, exc)
                return
            _apply(stream, batch, incomplete=incomplete)
        _discard_sealed(stream, old_seq)
        if not batch.progressed or batch.closed:
            return


def _discard_sealed(stream: Stream, old_seq: int) -> None:
    """After a commit: drop staged input that is sealed, and screens no longer needed."""
    for upload in Upload.objects.filter(stream=stream):
        staging.discard_before(upload, upload.consumed)
    if stream.kind == StreamKind.TERMINAL:
        for seq in range(old_seq, stream.next_seq):
            _screen_file(stream, seq).unlink(missing_ok=True)


def quiet_streams(now=None) -> list[tuple[int, int]]:
    """Open terminal streams of open sessions with unsealed input, and their session time now.

    Returns ``(stream id, now_ms)`` pairs for :func:`stream_advance`'s
    ``flush_now_ms``; session time is measured from the session's start.
    """
    now = now or timezone.now()
    rows = (Stream.objects.filter(kind=StreamKind.TERMINAL, state=StreamState.OPEN,
                                  recording__session__status=SessionStatus.OPEN,
                                  uploads__offset__gt=F("uploads__consumed"))
            .values_list("pk", "recording__session__started_at").distinct())
    return [(pk, max(0, int((now - started_at).total_seconds() * 1000)))
            for pk, started_at in rows]


# ------------------------------------------------------------------ packaging


class _PartWriter(io.RawIOBase):
    """A write-only file that seals what is written into a bytes stream's parts as it goes."""

    def __init__(self, stream: Stream, sealer: StreamSealer) -> None:
        self.stream, self.sealer, self.position = stream, sealer, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        for part in self.sealer.add_bytes(data):
            _store(self.stream, part)
        self.position += len(data)
        return len(data)

    def seekable(self) -> bool:
        # Unseekable: zipfile then writes data descriptors instead of seeking back.
        return False


def _zip_name(session: Session) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", session.record.name).strip("-") or "session"
    return f"{stem}-{session.started_at:%Y%m%d-%H%M%S}"


def typescript_zip_seal(*, session_id) -> None:
    """Package the staged typescript pair of a sealed terminal stream as ``typescript-zip``.

    Runs in one transaction (a retry starts over from the staged pair);
    the zip is streamed into parts, so memory stays flat.
    """
    with transaction.atomic():
        session = Session.objects.select_related("recording__record_key", "record").get(
            pk=session_id)
        recording = session.recording
        terminal = Stream.objects.filter(recording=recording, kind=StreamKind.TERMINAL,
                                         state__in=[StreamState.SEALED,
                                                    StreamState.INCOMPLETE]).first()
        if terminal is None or not terminal.uploads.exists():
            return
        zip_stream, _ = Stream.objects.get_or_create(recording=recording,
                                                     kind=StreamKind.TYPESCRIPT_ZIP)
        zip_stream = _lock(zip_stream.pk)
        if zip_stream.state != StreamState.OPEN:
            return
        zip_stream.parts.all().delete()
        zip_stream.next_seq, zip_stream.prev = 0, ""
        tys_path, tm_path = _typescript_files(terminal)
        if not tys_path.exists():
            staging.atomic_write(tys_path, TYS_HEADER)
            staging.atomic_write(tm_path, b"")
        sealer = _sealer(zip_stream)
        writer = _PartWriter(zip_stream, sealer)
        name = _zip_name(session)
        with zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, suffix in ((tys_path, ".tys"), (tm_path, ".tm")):
                info = zipfile.ZipInfo(name + suffix, date_time=session.started_at.timetuple()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as source, archive.open(info, "w") as target:
                    while block := source.read(1 << 20):
                        target.write(block)
        for part in sealer.close():
            _store(zip_stream, part)
        zip_stream.next_seq, zip_stream.prev = sealer.seq, sealer.prev
        zip_stream.last_t = session.duration_ms or 0
        zip_stream.state = StreamState.SEALED
        zip_stream.save()


def session_finish(*, session_id, incomplete: bool = False) -> None:
    """Finish a closed (or abandoned) session: final parts, the zip, then purge staging."""
    session = Session.objects.get(pk=session_id)
    if session.status not in (SessionStatus.CLOSING, SessionStatus.OPEN):
        return
    if not hasattr(session, "recording"):
        staging.purge_session(session_id)
        return
    uploads = list(session.uploads.all())
    short = any(u.length is not None and u.offset < u.length for u in uploads)
    # Never closed by its gateway (the reaper got it): incomplete whatever the retry says.
    incomplete = incomplete or short or session.ended_at is None
    streams = list(session.recording.streams.exclude(kind=StreamKind.TYPESCRIPT_ZIP))
    unused = []
    for stream in streams:
        if not stream.uploads.exists():
            # The gateway recorded nothing for this stream (e.g. no graphical
            # recorder): there is nothing to seal, and nothing to blame the others for.
            Stream.objects.filter(pk=stream.pk, state=StreamState.OPEN).update(
                state=StreamState.INCOMPLETE, error="The gateway uploaded nothing for it.")
            unused.append(stream.pk)
            continue
        stream_advance(stream_id=stream.pk, final=True, incomplete=incomplete)
    typescript_zip_seal(session_id=session_id)
    states = set(session.recording.streams.exclude(pk__in=unused)
                 .values_list("state", flat=True))
    if StreamState.FAILED in states:
        status = SessionStatus.FAILED
    elif incomplete or StreamState.INCOMPLETE in states:
        status = SessionStatus.INCOMPLETE
    else:
        status = SessionStatus.SEALED
    with transaction.atomic():
        fields = {"status": status}
        if incomplete and session.ended_at is None:
            from django.utils import timezone

            fields["ended_at"] = session.last_activity_at or timezone.now()
        Session.objects.filter(pk=session_id).update(**fields)
    staging.purge_session(session_id)
