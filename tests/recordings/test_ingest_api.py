"""Gateway API and tus server: sessions, uploads, bad input (4xx, never 500), reading parts."""

from __future__ import annotations

import base64
import datetime as dt
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from keeperpam.crypto.errors import IncompleteStream
from keeperpam.crypto.parts import stream_open, stream_verify
from recordings import services, staging
from recordings.choices import SessionStatus, StreamState
from recordings.models import Session, Upload
from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
from tests.keyring import share, viewer_role
from vault.models import AuditEvent

from .conftest import FIXTURES, record_private_key, signers, stream_parts

pytestmark = pytest.mark.django_db(transaction=True)
UPLOADS = "/api/v1/gateway/uploads/"
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def gw(api_client, token):
    api_client.credentials(HTTP_AUTHORIZATION=f"Gateway {token}")
    return api_client


def meta(**values) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def open_session(client, record, protocol="ssh"):
    return client.post("/api/v1/gateway/sessions/", {
        "record": record.pk, "protocol": protocol, "launched_by": "alice"}, format="json")


def create(client, session_id, fmt, length=None):
    headers = {**TUS, "HTTP_UPLOAD_METADATA": meta(session=str(session_id), format=fmt)}
    if length is None:
        headers["HTTP_UPLOAD_DEFER_LENGTH"] = "1"
    else:
        headers["HTTP_UPLOAD_LENGTH"] = str(length)
    return client.post(UPLOADS, **headers)


def patch(client, url, offset, body, **extra):
    return client.generic("PATCH", url, body, content_type="application/offset+octet-stream",
                          HTTP_UPLOAD_OFFSET=str(offset), **TUS, **extra)


def test_options_advertises_tus(api_client, ingest):
    response = gw(api_client, ingest.token).options(UPLOADS)
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) >= {"creation", "creation-defer-length"}
    assert "Tus-Max-Size" not in response


def test_session_not_recorded_is_listed(api_client, ingest):
    record = RecordFactory(configuration=ingest.record.configuration, graphical_recording=False,
                           text_recording=False)
    share(record, ingest.viewer)
    answer = open_session(gw(api_client, ingest.token), record).json()
    assert answer["recorded"] is False
    assert answer["streams"] == []
    assert answer["status"] == "not_recorded"
    api_client.credentials()
    api_client.force_authenticate(ingest.viewer)
    rows = api_client.get(f"/api/v1/records/{record.pk}/sessions/").json()["results"]
    assert [r["id"] for r in rows] == [answer["id"]]


def test_gateway_cannot_open_for_other_configurations_or_wrong_protocol(api_client, ingest):
    client = gw(api_client, ingest.token)
    elsewhere = RecordFactory(configuration=PamConfigurationFactory())
    assert open_session(client, elsewhere).status_code == 404
    response = open_session(client, ingest.record, protocol="rdp")
    assert response.status_code == 400
    assert "protocol" in response.json()["detail"]


def test_revoked_credential_is_refused(api_client, ingest):
    credential = ingest.gateway.credentials.get()
    services.gateway_credential_revoke(credential=credential, acting_user=None)
    assert open_session(gw(api_client, ingest.token), ingest.record).status_code == 401


def test_no_key_recipient_fails_closed(api_client, ingest):
    record = RecordFactory(configuration=ingest.record.configuration, text_recording=True)
    answer = open_session(gw(api_client, ingest.token), record).json()
    assert answer["status"] == "failed"
    assert "Nobody can receive" in answer["error"]
    assert answer["recorded"] is False


def test_bad_tus_requests_get_clear_4xx(api_client, ingest):
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    # Not tus at all.
    assert client.post(UPLOADS, HTTP_UPLOAD_LENGTH="5").status_code == 412
    # Malformed metadata, missing keys, bad lengths, unknown format/session.
    bad = client.post(UPLOADS, HTTP_UPLOAD_LENGTH="5", HTTP_UPLOAD_METADATA="session !!!", **TUS)
    assert bad.status_code == 400
    assert "base64" in bad.json()["detail"]
    assert client.post(UPLOADS, HTTP_UPLOAD_LENGTH="5", HTTP_UPLOAD_METADATA=meta(
        format="guac"), **TUS).status_code == 400
    assert client.post(UPLOADS, HTTP_UPLOAD_LENGTH="-1", HTTP_UPLOAD_METADATA=meta(
        session=session_id, format="guac"), **TUS).status_code == 400
    assert create(client, session_id, "mp4", 5).status_code == 400
    assert create(client, "not-a-uuid", "guac", 5).status_code == 404
    assert create(client, "00000000-0000-0000-0000-000000000000", "guac", 5).status_code == 404
    # Another gateway's session and upload are unknown to this one.
    other = services.gateway_create(name="other", configurations=[ingest.record.configuration],
                                    acting_user=None)
    _, other_token = services.gateway_credential_issue(gateway=other, acting_user=None)
    url = create(client, session_id, "guac", 10)["Location"]
    gw(api_client, other_token)
    assert create(client, session_id, "typescript", 5).status_code == 404
    assert patch(client, url, 0, b"12345").status_code == 404
    assert client.head(url, **TUS).status_code == 404
    gw(api_client, ingest.token)
    # Wrong content type, missing/wrong offset, too many bytes.
    assert client.generic("PATCH", url, b"x", content_type="text/plain", HTTP_UPLOAD_OFFSET="0",
                          **TUS).status_code == 415
    assert patch(client, url, 0, b"0123456789abc").status_code == 204  # capped to the length
    assert Upload.objects.get().offset == 10
    response = patch(client, url, 3, b"zzz")
    assert response.status_code == 409
    assert response["Upload-Offset"] == "10"
    assert "offset" in response.json()["detail"].lower()
    head = client.head(url, **TUS)
    assert head["Upload-Offset"] == "10"
    assert head["Upload-Length"] == "10"
    assert head["Cache-Control"] == "no-store"
    assert client.head(url).status_code == 412


def test_deferred_length_is_set_by_a_later_patch(api_client, ingest):
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    url = create(client, session_id, "guac")["Location"]
    assert client.head(url, **TUS)["Upload-Defer-Length"] == "1"
    data = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    assert patch(client, url, 0, data[:40000]).status_code == 204
    response = patch(client, url, 40000, data[40000:], HTTP_UPLOAD_LENGTH=str(len(data)))
    assert response.status_code == 204
    assert response["Upload-Offset"] == str(len(data))
    assert client.head(url, **TUS)["Upload-Length"] == str(len(data))
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    assert Session.objects.get(pk=session_id).status == SessionStatus.SEALED


def test_malformed_timing_marks_the_session_and_keeps_earlier_parts(api_client, ingest):
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    ts = b"[BEGIN TYPESCRIPT]\n" + b"hello world\r\n" * 10
    tm = b"0.1 13\n0.2 13\nthis is not timing\n"
    for fmt, data in (("typescript", ts), ("timing", tm)):
        url = create(client, session_id, fmt, len(data))["Location"]
        assert patch(client, url, 0, data).status_code == 204
    response = client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    assert response.status_code == 200
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.FAILED
    assert "timing line 3" in session.error


def test_garbage_guac_is_sealed_with_a_warning(api_client, ingest):
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    data = b"\x00\xffnot guacamole at all;" * 100
    url = create(client, session_id, "guac", len(data))["Location"]
    assert patch(client, url, 0, data).status_code == 204
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    stream = Session.objects.get(pk=session_id).recording.streams.get(kind="guac")
    assert stream.state == StreamState.SEALED
    assert "not valid Guacamole" in stream.error


def test_parts_are_listed_and_served_with_ranges_to_viewers_only(api_client, ingest):
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    data = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    url = create(client, session_id, "guac", len(data))["Location"]
    patch(client, url, 0, data)
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    client.credentials()

    stranger = UserFactory()
    viewer_role(stranger)
    client.force_authenticate(stranger)
    listing = f"/api/v1/sessions/{session_id}/streams/guac/parts/"
    assert client.get(listing).status_code == 404
    assert client.get(listing + "0/").status_code == 404
    assert client.get(f"/api/v1/sessions/{session_id}/").status_code == 404
    assert client.get(f"/api/v1/records/{ingest.record.pk}/sessions/").status_code == 404

    client.force_authenticate(ingest.viewer)
    rows = client.get(listing).json()["results"]
    assert rows
    assert rows[-1]["final"]
    assert rows[0]["seq"] == 0
    whole = client.get(rows[0]["url"])
    assert whole.status_code == 200
    assert len(whole.content) == rows[0]["size"]
    binary = client.get(rows[0]["url"], HTTP_ACCEPT="application/octet-stream")
    assert binary.status_code == 200
    assert binary.content == whole.content
    detail = client.get(f"/api/v1/sessions/{session_id}/").json()
    assert detail["record"] == ingest.record.pk
    assert {s["stream"] for s in detail["streams"]} >= {"guac"}
    ranged = client.get(rows[0]["url"], HTTP_RANGE="bytes=4-7")
    assert ranged.status_code == 206
    assert ranged.content == whole.content[4:8]
    assert ranged["Content-Range"] == f"bytes 4-7/{rows[0]['size']}"
    assert client.get(rows[0]["url"], HTTP_RANGE="bytes=99999999-").status_code == 416
    reads = AuditEvent.objects.filter(action="recording.part_read", actor=ingest.viewer)
    assert reads.count() == 3
    assert reads.first().remote_addr == "127.0.0.1"
    with CaptureQueriesContext(connection) as few:
        client.get(f"/api/v1/records/{ingest.record.pk}/sessions/")
    client.force_authenticate(None)
    for _ in range(3):
        open_session(gw(client, ingest.token), ingest.record)
    client.credentials()
    client.force_authenticate(ingest.viewer)
    with CaptureQueriesContext(connection) as more:
        rows = client.get(f"/api/v1/records/{ingest.record.pk}/sessions/").json()["results"]
    assert len(rows) == 4
    assert len(more) == len(few)


def test_idle_session_is_sealed_incomplete(api_client, ingest, settings):
    settings.KEEPERPAM_SESSION_IDLE_TIMEOUT = 60
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    data = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    url = create(client, session_id, "guac")["Location"]
    patch(client, url, 0, data[:50000])
    assert services.sessions_abandon_idle() == []
    later = timezone.now() + dt.timedelta(seconds=120)
    assert services.sessions_abandon_idle(now=later) == [session_id]
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.INCOMPLETE
    assert "silent" in session.error
    stream = session.recording.streams.get(kind="guac")
    assert stream.state == StreamState.INCOMPLETE
    parts = stream_parts(stream)
    with pytest.raises(IncompleteStream):
        stream_verify(parts, signers=signers(), recording=str(session.recording.pk),
                      stream="guac")
    bodies: list[bytes] = []

    def read_all() -> None:
        for part in stream_open(parts, record_private_key=record_private_key(
                ingest, session.recording), signers=signers(),
                recording=str(session.recording.pk), stream="guac"):
            bodies.append(part.body)

    with pytest.raises(IncompleteStream):
        read_all()
    got = b"".join(bodies)
    assert got == data[:50000]
    assert not staging.session_dir(session_id).exists()
    assert patch(client, url, 50000, b"late").status_code in (404, 409)


def test_canary_is_nowhere_but_in_sealed_form(api_client, ingest, data_dirs, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    canary = b"CANARY-7f3a9c-zero-knowledge"
    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    ts = b"[BEGIN TYPESCRIPT]\n" + b"$ echo " + canary + b"\r\n" + canary + b"\r\n"
    tm = f"0.5 {len(ts) - 19}\n".encode()
    for fmt, data in (("typescript", ts), ("timing", tm)):
        url = create(client, session_id, fmt, len(data))["Location"]
        assert patch(client, url, 0, data).status_code == 204
    client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {}, format="json")
    assert Session.objects.get(pk=session_id).status == SessionStatus.SEALED
    # Database dump.
    dump = tmp_path / "dump.json"
    call_command("dumpdata", output=str(dump), verbosity=0)
    assert canary not in dump.read_bytes()
    if connection.vendor == "sqlite":
        name = connection.settings_dict["NAME"]
        if name and not str(name).startswith(("file:", ":memory:")):
            assert canary not in open(name, "rb").read()
    # Storage, staging, logs.
    for path in (data_dirs / "storage").rglob("*"):
        if path.is_file():
            assert canary not in path.read_bytes(), path
    assert not any((data_dirs / "staging").rglob("*.*")) or all(
        canary not in p.read_bytes() for p in (data_dirs / "staging").rglob("*") if p.is_file())
    assert canary.decode() not in caplog.text
    # ... yet the viewer can read it back.
    terminal = Session.objects.get(pk=session_id).recording.streams.get(kind="terminal")
    plaintext = b"".join(p.plaintext for p in stream_open(
        stream_parts(terminal), record_private_key=record_private_key(ingest, terminal.recording),
        signers=signers(), recording=str(terminal.recording_id), stream="terminal"))
    assert canary in plaintext


def test_an_unreachable_database_answers_503_and_loses_nothing(api_client, ingest, monkeypatch):
    from django.db import OperationalError

    from recordings.authentication import GatewayAuthentication

    client = gw(api_client, ingest.token)
    session_id = open_session(client, ingest.record).json()["id"]
    data = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    url = create(client, session_id, "guac")["Location"]
    assert patch(client, url, 0, data[:1000]).status_code == 204

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    # The database is gone before the gateway is even authenticated ...
    with monkeypatch.context() as patched:
        patched.setattr(GatewayAuthentication, "authenticate", unreachable)
        for response in (client.head(url, **TUS), patch(client, url, 1000, data[1000:2000]),
                         client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {},
                                     format="json")):
            assert response.status_code == 503, response.content
            assert response["Retry-After"] == "2"
    # ... or goes away while the offset is committed: the chunk is staged, the offset not moved.
    with monkeypatch.context() as patched:
        patched.setattr(Upload, "save", unreachable)
        response = patch(client, url, 1000, data[1000:2000])
        assert response.status_code == 503
        assert response["Retry-After"]
    assert client.head(url, **TUS)["Upload-Offset"] == "1000"
    # Back again: the client resumes at the offset it is told and nothing is lost.
    assert patch(client, url, 1000, data[1000:]).status_code == 204
    assert client.post(f"/api/v1/gateway/sessions/{session_id}/close/", {},
                       format="json").status_code == 200
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.SEALED, session.error
    stream = session.recording.streams.get(kind="guac")
    bodies = [part.body for part in stream_open(
        stream_parts(stream), record_private_key=record_private_key(ingest, session.recording),
        signers=signers(), recording=str(session.recording.pk), stream="guac")]
    assert b"".join(bodies) == data
