"""The ingest pipeline end to end (embedded default: eager Celery): tuspy → sealed streams.

The gateway side is tuspy 1.1.0, unmodified, against Django's live server.
"""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from tusclient import client as tus_client

from keeperpam.crypto.parts import stream_verify
from keeperpam.crypto.terminal import RecordType, records_decode, records_from_typescript
from recordings import staging
from recordings.choices import SessionStatus, StreamState
from recordings.models import Session
from tests.tools import scriptreplay

from .conftest import FIXTURES, open_stream, signers, stream_parts

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(token: str) -> dict:
    return {"Authorization": f"Gateway {token}"}


def open_session(base: str, setup, protocol: str = "ssh") -> dict:
    response = requests.post(f"{base}/api/v1/gateway/sessions/", headers=_headers(setup.token),
                             json={"record": setup.record.pk, "protocol": protocol,
                                   "launched_by": "alice", "client_address": "10.0.0.9"},
                             timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def close_session(base: str, setup, session_id: str) -> dict:
    response = requests.post(f"{base}/api/v1/gateway/sessions/{session_id}/close/",
                             headers=_headers(setup.token), json={"exit_status": 0}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def tus_upload(base: str, setup, session_id: str, fmt: str, data: bytes, *,
               chunk_size: int, drop_after: int | None = None) -> str:
    """Upload ``data`` with tuspy in chunks; optionally stop after ``drop_after`` chunks,
    then resume with a fresh uploader that HEADs the offset (a dropped connection)."""
    client = tus_client.TusClient(f"{base}/api/v1/gateway/uploads/", headers=_headers(setup.token))
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size,
                               metadata={"session": session_id, "format": fmt})
    if drop_after is None:
        uploader.upload()
        return uploader.url
    for _ in range(drop_after):
        uploader.upload_chunk()
    url = uploader.url
    resumed = client.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size, url=url)
    assert resumed.offset == uploader.offset  # HEAD told the verified offset
    resumed.upload()
    return url


def test_guac_fixture_seals_verifies_and_decrypts_to_the_original_bytes(live_server, ingest):
    base = live_server.url
    original = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    answer = open_session(base, ingest)
    assert answer["recorded"]
    assert {s["stream"] for s in answer["streams"]} == {"guac",
                                                                                "terminal"}
    url = tus_upload(base, ingest, answer["id"], "guac", original, chunk_size=7_000,
                     drop_after=3)
    # A duplicate PATCH at an old offset is refused with the current offset; nothing changes.
    dup = requests.patch(url, data=original[:7_000], timeout=30, headers={
        **_headers(ingest.token), "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert dup.status_code == 409
    assert dup.headers["Upload-Offset"] == str(len(original))
    close_session(base, ingest, answer["id"])

    session = Session.objects.get(pk=answer["id"])
    stream = session.recording.streams.get(kind="guac")
    assert stream.state == StreamState.SEALED
    summary = stream_verify(stream_parts(stream), signers=signers(),
                            recording=str(session.recording.pk), stream="guac")
    assert summary.parts == stream.parts.count()
    opened = open_stream(ingest, stream)
    assert b"".join(p.body for p in opened) == original
    assert opened[-1].header.final
    assert session.status == SessionStatus.SEALED
    # No terminal upload came: that stream says so; staging is purged.
    terminal = session.recording.streams.get(kind="terminal")
    assert terminal.state == StreamState.INCOMPLETE
    assert "nothing" in terminal.error
    assert not staging.session_dir(session.pk).exists()


@pytest.mark.parametrize(("typescript", "timing"), [
    ("guacd-ssh-short.typescript", "guacd-ssh-short.typescript.timing"),
    ("util-linux-classic.tys", "util-linux-classic.tm"),
])
def test_typescript_fixture_seals_to_records_and_a_replayable_zip(
        live_server, ingest, tmp_path, typescript, timing):
    base = live_server.url
    ts_bytes = (FIXTURES / typescript).read_bytes()
    tm_bytes = (FIXTURES / timing).read_bytes()
    answer = open_session(base, ingest)
    # Timing first, in small pieces, so lines wait for their typescript bytes.
    tus_upload(base, ingest, answer["id"], "timing", tm_bytes, chunk_size=50, drop_after=2)
    tus_upload(base, ingest, answer["id"], "typescript", ts_bytes, chunk_size=100,
               drop_after=2)
    close_session(base, ingest, answer["id"])

    session = Session.objects.get(pk=answer["id"])
    assert session.status == SessionStatus.SEALED
    terminal = session.recording.streams.get(kind="terminal")
    assert terminal.state == StreamState.SEALED, terminal.error
    opened = open_stream(ingest, terminal)
    got = [r for p in opened for r in records_decode(p.body)]
    with open(FIXTURES / typescript, "rb") as ts, open(FIXTURES / timing) as tm:
        expected = list(records_from_typescript(ts, tm))
    assert got == expected

    zip_stream = session.recording.streams.get(kind="typescript-zip")
    assert zip_stream.state == StreamState.SEALED
    archive = zipfile.ZipFile(io.BytesIO(b"".join(p.plaintext for p in
                                                  open_stream(ingest, zip_stream))))
    names = sorted(archive.namelist())
    assert names[0].endswith(".tm")
    assert names[1].endswith(".tys")
    archive.extractall(tmp_path)
    replayed = scriptreplay(tmp_path / names[0], tmp_path / names[1])
    original_out = scriptreplay(FIXTURES / timing, FIXTURES / typescript)
    assert replayed == original_out
    assert not staging.session_dir(session.pk).exists()
    assert all(r.type != RecordType.KEYFRAME for r in got)


def test_a_connection_dropped_mid_body_resumes_from_head(live_server, ingest):
    import socket
    from urllib.parse import urlsplit

    base = live_server.url
    original = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    answer = open_session(base, ingest)
    client = tus_client.TusClient(f"{base}/api/v1/gateway/uploads/", headers=_headers(ingest.token))
    uploader = client.uploader(file_stream=io.BytesIO(original), chunk_size=20_000,
                               metadata={"session": answer["id"], "format": "guac"})
    uploader.upload_chunk()
    path = urlsplit(uploader.url).path
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall((f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Gateway {ingest.token}\r\nTus-Resumable: 1.0.0\r\n"
                     "Content-Type: application/offset+octet-stream\r\n"
                     f"Upload-Offset: 20000\r\nContent-Length: 30000\r\n\r\n").encode()
                    + original[20_000:27_000])
    # The gateway reconnects: HEAD tells what was kept; tuspy carries on from there
    # (if the server was still finishing the cut request, the 409 makes tuspy HEAD again).
    resumed = client.uploader(file_stream=io.BytesIO(original), chunk_size=20_000,
                              url=uploader.url, retries=3, retry_delay=0.2)
    assert resumed.offset in (20_000, 27_000)
    resumed.upload()
    close_session(base, ingest, answer["id"])
    stream = Session.objects.get(pk=answer["id"]).recording.streams.get(kind="guac")
    assert b"".join(p.body for p in open_stream(ingest, stream)) == original
