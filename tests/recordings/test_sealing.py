"""The sealer across many task runs: resumed state, keyframes, crashes mid-batch."""

from __future__ import annotations

import io
import random

import pytest

from keeperpam.crypto.parts import stream_verify
from keeperpam.crypto.terminal import (
    Record,
    RecordType,
    TerminalEmulator,
    records_decode,
    records_from_asciicast,
    records_from_typescript,
)
from recordings import sealing, staging
from recordings.choices import SessionStatus, StreamState
from recordings.models import Part, Session

from .conftest import open_stream, signers, stream_parts
from .test_ingest_api import create, gw, open_session, patch

pytestmark = pytest.mark.django_db(transaction=True)


def synthetic_typescript(seconds: int, *, seed: int = 7) -> tuple[bytes, bytes]:
    """A typescript + classic timing of ``seconds`` of coloured output, > 1 MiB."""
    rng = random.Random(seed)
    ts, tm = io.BytesIO(), io.StringIO()
    ts.write(b'Script started on 2026-01-01 [COLUMNS="100" LINES="30"]\n')
    for step in range(seconds * 4):
        line = (f"\x1b[3{step % 8}mline {step} " + "x" * rng.randint(10, 90)
                + "\x1b[0m\r\n").encode()
        chunk = line * rng.randint(20, 400)
        if step % 37 == 5:
            chunk *= 3  # over 64 KiB: split into several records
        ts.write(chunk)
        tm.write(f"0.250000 {len(chunk)}\n")
    return ts.getvalue(), tm.getvalue().encode()


def upload_in_pieces(client, session_id, pieces):
    for fmt, data, size in pieces:
        url = create(client, session_id, fmt, len(data))["Location"]
        for offset in range(0, len(data), size):
            assert patch(client, url, offset, data[offset:offset + size]).status_code == 204


def check_terminal(ingest, session_id, ts, tm):
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.SEALED, session.error
    terminal = session.recording.streams.get(kind="terminal")
    opened = open_stream(ingest, terminal)
    assert len(opened) > 2
    records = [r for p in opened for r in records_decode(p.body)]
    expected = list(records_from_typescript(io.BytesIO(ts), io.StringIO(tm.decode())))
    assert records == expected
    # Each later part's keyframe reproduces the screen a player reaching it has.
    emulator = TerminalEmulator(*TerminalEmulator().size)
    for part in opened:
        if part.header.seq:
            (keyframe,) = records_decode(part.keyframe)
            assert keyframe.type is RecordType.KEYFRAME
            fresh = TerminalEmulator(*emulator.size)
            fresh.feed(Record(RecordType.OUTPUT, 0, keyframe.data))
            assert fresh.keyframe() == emulator.keyframe()
        for record in records_decode(part.body):
            emulator.feed(record)
    assert all(p.header.t1 - p.header.t0 < 10_000 for p in opened)
    return terminal


def test_long_terminal_stream_is_sealed_across_many_task_runs(api_client, ingest):
    ts, tm = synthetic_typescript(40)
    assert len(ts) > 1 << 20
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    upload_in_pieces(client, session_id, [("timing", tm, 500), ("typescript", ts, 150_000)])
    # Sealed while arriving: parts exist before close, staging holds only the unsealed tail.
    assert Part.objects.filter(stream__recording__session_id=session_id).count() > 1
    staged = sum(p.stat().st_size for p in staging.session_dir(session_id).rglob("0*"))
    assert staged < len(ts) // 2
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    check_terminal(ingest, session_id, ts, tm)


def test_asciicast_upload(api_client, ingest):
    lines = ['{"version": 2, "width": 90, "height": 20}']
    lines += [f'[{i * 0.7:.3f}, "o", "step {i} \\u001b[1mbold\\u001b[0m\\r\\n"]'
              for i in range(60)]
    data = ("\n".join(lines) + "\n").encode()
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    upload_in_pieces(client, session_id, [("asciicast", data, 333)])
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    terminal = Session.objects.get(pk=session_id).recording.streams.get(kind="terminal")
    records = [r for p in open_stream(ingest, terminal) for r in records_decode(p.body)]
    assert records == list(records_from_asciicast(io.StringIO(data.decode())))


def test_a_batch_killed_midway_loses_and_duplicates_nothing(api_client, ingest, monkeypatch):
    ts, tm = synthetic_typescript(30, seed=3)
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    real_store, calls = sealing._store, {"n": 0}

    def dying_store(stream, part):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise OSError("worker killed")  # after earlier parts of the batch were written
        return real_store(stream, part)

    monkeypatch.setattr(sealing, "_store", dying_store)
    url = create(client, session_id, "timing", len(tm))["Location"]
    patch(client, url, 0, tm)
    url = create(client, session_id, "typescript", len(ts))["Location"]
    for offset in range(0, len(ts), 200_000):
        # The "crash" fails the eager task, not the request: the bytes stay accepted.
        assert patch(client, url, offset, ts[offset:offset + 200_000]).status_code == 204
    monkeypatch.setattr(sealing, "_store", real_store)
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    terminal = check_terminal(ingest, session_id, ts, tm)
    seqs = list(terminal.parts.values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))
    stream_verify(stream_parts(terminal), signers=signers(), recording=str(terminal.recording_id),
                  stream="terminal")
    assert terminal.state == StreamState.SEALED
