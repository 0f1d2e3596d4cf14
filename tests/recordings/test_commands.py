"""The import command, the reference gateway agent and the demo gateway."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
import requests
from django.core.management import call_command

from keeperpam.crypto.terminal import records_decode, records_from_typescript
from recordings.choices import SessionStatus
from recordings.models import Session

from .conftest import FIXTURES, open_stream

pytestmark = pytest.mark.django_db(transaction=True)


def test_import_recording_makes_a_sealed_session(ingest):
    out = io.StringIO()
    call_command("import_recording", gateway=ingest.gateway.name, record=ingest.record.pk,
                 guac=FIXTURES / "guacd-ssh-short.guac",
                 typescript=FIXTURES / "guacd-ssh-short.typescript",
                 timing=FIXTURES / "guacd-ssh-short.typescript.timing", stdout=out)
    session = Session.objects.get()
    assert session.status == SessionStatus.SEALED, session.error
    guac = session.recording.streams.get(kind="guac")
    assert b"".join(p.body for p in open_stream(ingest, guac)) == (
        FIXTURES / "guacd-ssh-short.guac").read_bytes()
    assert session.recording.streams.get(kind="typescript-zip").parts.exists()


def test_gateway_agent_streams_a_growing_recording(live_server, ingest, tmp_path):
    recordings, typescripts = tmp_path / "rec", tmp_path / "ts"
    recordings.mkdir()
    typescripts.mkdir()
    guac = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    ts = (FIXTURES / "guacd-ssh-short.typescript").read_bytes()
    tm = (FIXTURES / "guacd-ssh-short.typescript.timing").read_bytes()
    name = f"{ingest.record.pk}-session"
    (recordings / name).write_bytes(guac[:30000])
    (typescripts / name).write_bytes(ts[:500])
    (typescripts / f"{name}.timing").write_bytes(tm[:200])
    agent = threading.Thread(target=call_command, args=("gateway_agent",), kwargs={
        "url": live_server.url, "token": ingest.token, "recording_path": recordings,
        "typescript_path": typescripts, "idle": 2.0, "poll": 0.2, "once": True,
        "stdout": io.StringIO()})
    agent.start()
    time.sleep(1.0)  # guacd is still writing
    with open(recordings / name, "ab") as out:
        out.write(guac[30000:])
    with open(typescripts / name, "ab") as out:
        out.write(ts[500:])
    with open(typescripts / f"{name}.timing", "ab") as out:
        out.write(tm[200:])
    agent.join(60)
    assert not agent.is_alive()
    session = Session.objects.get()
    assert session.status == SessionStatus.SEALED, session.error
    streams = {s.kind: s for s in session.recording.streams.all()}
    assert b"".join(p.body for p in open_stream(ingest, streams["guac"])) == guac
    records = [r for p in open_stream(ingest, streams["terminal"]) for r in
               records_decode(p.body)]
    assert records == list(records_from_typescript(io.BytesIO(ts), io.StringIO(tm.decode())))


def test_demo_setup_prints_a_working_gateway_credential(live_server, data_dirs):
    out = io.StringIO()
    call_command("demo_setup", "--json", stdout=out)
    gateway = json.loads(out.getvalue())["gateway"]
    response = requests.options(f"{live_server.url}/api/v1/gateway/uploads/", timeout=10,
                                headers={"Authorization": f"Gateway {gateway['token']}"})
    assert response.status_code == 204
    again = io.StringIO()
    call_command("demo_setup", "--json", stdout=again)
    assert json.loads(again.getvalue())["gateway"] == gateway
