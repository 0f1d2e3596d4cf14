"""Time-based flush of quiet terminal streams (Celery beat), in eager mode."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone

from keeperpam.crypto.errors import IncompleteStream
from keeperpam.crypto.parts import part_parse, stream_open, stream_verify
from keeperpam.crypto.terminal import RecordType, records_decode, records_from_typescript
from recordings import tasks
from recordings.choices import SessionStatus, StreamState
from recordings.models import Session

from .conftest import open_stream, record_private_key, signers, stream_parts
from .test_ingest_api import create, gw, patch

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = (b'Script started on 2026-01-01 10:00:00+00:00 [COMMAND="bash" TERM="xterm" '
          b'COLUMNS="80" LINES="24"]\n')


def _open(client, record, started_at):
    response = client.post("/api/v1/gateway/sessions/", {
        "record": record.pk, "protocol": "ssh", "launched_by": "alice",
        "started_at": started_at.isoformat()}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _send(client, session_id, ts: bytes, tm: bytes) -> dict:
    urls = {fmt: create(client, session_id, fmt)["Location"] for fmt in ("typescript", "timing")}
    assert patch(client, urls["typescript"], 0, ts).status_code == 204
    assert patch(client, urls["timing"], 0, tm).status_code == 204
    return urls


def open_stream_lazily(setup, stream):
    """The parts of ``stream`` as a reader yields them (raising at an incomplete end)."""
    return stream_open(stream_parts(stream),
                       record_private_key=record_private_key(setup, stream.recording),
                       signers=signers(), recording=str(stream.recording_id), stream=stream.kind)


def _terminal(session_id):
    return Session.objects.get(pk=session_id).recording.streams.get(kind="terminal")


def test_a_quiet_terminal_is_flushed_before_the_close(api_client, ingest):
    client = gw(api_client, ingest.token)
    # The session started a minute ago; its output stopped after 1.5 s of session time.
    session_id = _open(client, ingest.record, timezone.now() - dt.timedelta(seconds=60))
    ts = HEADER + b"$ uptime\r\n" + b" 10:00:01 up 1 day\r\n"
    tm = b"0.5 10\n1.0 20\n"
    _send(client, session_id, ts, tm)
    terminal = _terminal(session_id)
    assert terminal.parts.count() == 0  # nothing newer arrived to cut the part

    assert tasks.streams_flush_quiet.delay().get() == 1
    terminal.refresh_from_db()
    flushed = list(terminal.parts.order_by("seq"))
    assert [(p.seq, p.final, p.t1) for p in flushed] == [(0, False, 1500)]
    # A watcher can already read that output (the stream is not complete yet).
    live: list = []

    def watch() -> None:
        for part in open_stream_lazily(ingest, terminal):
            live.extend(records_decode(part.body))

    with pytest.raises(IncompleteStream):
        watch()
    assert b"".join(r.data for r in live if r.type is RecordType.OUTPUT) == ts[len(HEADER):]
    # Flushing again finds nothing new to seal.
    assert tasks.streams_flush_quiet.delay().get() == 0
    assert terminal.parts.count() == 1

    assert client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {},
                       format="json").status_code == 200
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.SEALED, session.error
    terminal.refresh_from_db()
    assert terminal.state == StreamState.SEALED
    parts = stream_parts(terminal)
    assert [part_parse(p).header.final for p in parts] == [False, True]
    assert part_parse(parts[-1]).header.kf > 0  # the final part: a keyframe, never empty
    stream_verify(parts, signers=signers(), recording=str(terminal.recording_id),
                  stream="terminal")
    records = [r for p in open_stream(ingest, terminal) for r in records_decode(p.body)
               if r.type is not RecordType.KEYFRAME]
    assert records == list(records_from_typescript(io.BytesIO(ts), io.StringIO(tm.decode())))


def test_a_fresh_part_is_not_flushed(api_client, ingest):
    client = gw(api_client, ingest.token)
    session_id = _open(client, ingest.record, timezone.now())
    _send(client, session_id, HEADER + b"hello\r\n", b"0.2 7\n")
    tasks.streams_flush_quiet.delay()
    assert _terminal(session_id).parts.count() == 0


def test_output_after_a_pause_cuts_the_part_when_it_arrives(api_client, ingest):
    """The PATCH path needs no beat: a record 10 s after the part's start seals it."""
    client = gw(api_client, ingest.token)
    session_id = _open(client, ingest.record, timezone.now())
    urls = _send(client, session_id, HEADER + b"first\r\n", b"0.1 7\n")
    assert _terminal(session_id).parts.count() == 0
    ts_offset, tm_offset = len(HEADER) + 7, 6
    assert patch(client, urls["typescript"], ts_offset, b"later\r\n").status_code == 204
    assert patch(client, urls["timing"], tm_offset, b"12.0 7\n").status_code == 204
    parts = list(_terminal(session_id).parts.order_by("seq"))
    assert [(p.seq, p.final) for p in parts] == [(0, False)]
    assert parts[0].t1 < 10_000
