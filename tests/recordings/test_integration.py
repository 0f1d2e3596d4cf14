"""The pipeline with a real Celery worker process on Redis and PostgreSQL, and its faults.

Marked ``integration``: each test starts its own worker (``celery -A keeperpam
worker``) on a queue unique to the run, with the test database and data dirs,
so a stray worker cannot steal its tasks. Run with CELERY_BROKER_URL and
DATABASE_URL set (``.ci/run`` does).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.db import connection, connections
from tusclient import client as tus_client

from keeperpam.celery import app as celery_app
from keeperpam.crypto.parts import stream_verify
from keeperpam.crypto.terminal import records_decode, records_from_typescript
from recordings.choices import SessionStatus
from recordings.models import Part, Session
from recordings.tasks import stream_seal_pending

from .conftest import FIXTURES, open_stream, signers, stream_parts
from .test_sealing import synthetic_typescript

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"),
                       reason="needs a real broker: set CELERY_BROKER_URL (Redis) and "
                              "DATABASE_URL (PostgreSQL); .ci/run does"),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue():
    name = f"it-{uuid.uuid4().hex[:10]}"
    before = (celery_app.conf.task_default_queue, celery_app.conf.task_always_eager)
    celery_app.conf.task_default_queue = name
    celery_app.conf.task_always_eager = False
    yield name
    celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = before


class Worker:
    """A ``celery worker`` subprocess sharing the test database, data dirs and queue."""

    def __init__(self, queue: str, data_dir: Path, log: Path, broker: str | None = None) -> None:
        self.queue, self.data_dir, self.log, self.process = queue, data_dir, log, None
        self.broker = broker or os.environ["CELERY_BROKER_URL"]

    def env(self) -> dict:
        settings = connection.settings_dict
        if connection.vendor == "sqlite":
            pytest.skip("the worker cannot share SQLite's in-memory test database; "
                        "set DATABASE_URL to PostgreSQL")
        url = (f"postgres://{settings['USER']}:{settings['PASSWORD'] or ''}@"
               f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}")
        return {**os.environ, "DATABASE_URL": url, "KEEPERPAM_DATA_DIR": str(self.data_dir),
                "KEEPERPAM_STAGING_DIR": str(self.data_dir / "staging"),
                "KEEPERPAM_SIGNER_KEY_FILE": str(self.data_dir / "keys" / "signer.pem"),
                "CELERY_TASK_DEFAULT_QUEUE": self.queue, "CELERY_BROKER_URL": self.broker,
                "KEEPERPAM_CELERY_VISIBILITY_TIMEOUT": "5"}

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "celery"), "-A", "keeperpam.celery", "worker",
             "-Q", self.queue, "--pool=prefork", "--concurrency=1", "-l", "info",
             "--without-gossip", "--without-mingle", "-n", f"{self.queue}-{time.time()}@%h"],
            cwd=ROOT, env=self.env(), stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker(queue, data_dirs, tmp_path):
    w = Worker(queue, data_dirs, tmp_path / "worker.log")
    w.start()
    yield w
    w.stop()


def wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _headers(token):
    return {"Authorization": f"Gateway {token}"}


def _open(base, setup):
    response = requests.post(f"{base}/api/v1/gateway/sessions/", headers=_headers(setup.token),
                             json={"record": setup.record.pk, "protocol": "ssh",
                                   "launched_by": "alice"}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _upload(base, setup, session_id, fmt, data, chunk_size, drop_after=None):
    client = tus_client.TusClient(f"{base}/api/v1/gateway/uploads/", headers=_headers(setup.token))
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size,
                               metadata={"session": session_id, "format": fmt})
    if drop_after:
        for _ in range(drop_after):
            uploader.upload_chunk()
        uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size,
                                   url=uploader.url)
    uploader.upload()


def _close(base, setup, session_id):
    response = requests.post(f"{base}/api/v1/gateway/sessions/{session_id}/close/",
                             headers=_headers(setup.token), json={}, timeout=30)
    assert response.status_code == 200, response.text


def _status(session_id):
    return Session.objects.get(pk=session_id).status


def test_fixtures_through_a_real_worker(live_server, ingest, worker):
    base = live_server.url
    session_id = _open(base, ingest)
    guac = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    ts = (FIXTURES / "guacd-ssh-short.typescript").read_bytes()
    tm = (FIXTURES / "guacd-ssh-short.typescript.timing").read_bytes()
    _upload(base, ingest, session_id, "guac", guac, 9_000, drop_after=2)
    _upload(base, ingest, session_id, "timing", tm, 100, drop_after=1)
    _upload(base, ingest, session_id, "typescript", ts, 300, drop_after=1)
    _close(base, ingest, session_id)
    wait_for(lambda: _status(session_id) not in (SessionStatus.OPEN, SessionStatus.CLOSING),
             what="the session to be sealed")
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.SEALED, session.error
    streams = {s.kind: s for s in session.recording.streams.all()}
    assert b"".join(p.body for p in open_stream(ingest, streams["guac"])) == guac
    records = [r for p in open_stream(ingest, streams["terminal"]) for r in
               records_decode(p.body)]
    assert records == list(records_from_typescript(io.BytesIO(ts), io.StringIO(tm.decode())))
    for stream in streams.values():
        stream_verify(stream_parts(stream), signers=signers(),
                      recording=str(session.recording.pk), stream=stream.kind)


def test_worker_killed_mid_seal_then_restarted_completes(live_server, ingest, worker):
    base = live_server.url
    ts, tm = synthetic_typescript(400, seed=11)  # ~20 MB, a few hundred parts
    session_id = _open(base, ingest)
    _upload(base, ingest, session_id, "timing", tm, 1 << 20)
    _upload(base, ingest, session_id, "typescript", ts, 4 << 20)
    _close(base, ingest, session_id)
    # Kill the whole worker (SIGKILL to its process group) once sealing is under way.
    wait_for(lambda: Part.objects.filter(stream__recording__session_id=session_id).count() > 3,
             what="sealing to start")
    assert _status(session_id) == SessionStatus.CLOSING
    worker.kill()
    killed_at = Part.objects.filter(stream__recording__session_id=session_id).count()
    worker.start()  # the unacknowledged task is redelivered (visibility timeout 5 s)
    wait_for(lambda: _status(session_id) not in (SessionStatus.OPEN, SessionStatus.CLOSING),
             timeout=300, what="the restarted worker to finish")
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.SEALED, session.error
    terminal = session.recording.streams.get(kind="terminal")
    seqs = list(terminal.parts.values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))
    assert len(seqs) > killed_at
    stream_verify(stream_parts(terminal), signers=signers(), recording=str(terminal.recording_id),
                  stream="terminal")
    records = [r for p in open_stream(ingest, terminal) for r in records_decode(p.body)]
    assert records == list(records_from_typescript(io.BytesIO(ts), io.StringIO(tm.decode())))


class PrivateRedis:
    """A throw-away redis-server on a free port, so restarting it disturbs nobody else."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory, self.process = directory, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                        capture_output=True).stdout.strip() == b"PONG",
                 timeout=20, what="redis-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path, queue, monkeypatch):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    before = celery_app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", redis.url)
    celery_app.conf.broker_url = redis.url
    celery_app._after_fork()  # drop pooled connections to the old broker
    yield redis
    redis.stop()
    celery_app.conf.broker_url = before
    celery_app._after_fork()


def test_broker_restarted_during_an_upload_resumes_and_completes(
        live_server, ingest, private_redis, queue, data_dirs, tmp_path):
    worker = Worker(queue, data_dirs, tmp_path / "worker.log", broker=private_redis.url)
    assert celery_app.connection_for_write().as_uri().endswith(f":{private_redis.port}/0")
    worker.start()
    try:
        base = live_server.url
        ts, tm = synthetic_typescript(60, seed=5)
        session_id = _open(base, ingest)
        _upload(base, ingest, session_id, "timing", tm, 1 << 20)
        client = tus_client.TusClient(f"{base}/api/v1/gateway/uploads/",
                                      headers=_headers(ingest.token))
        uploader = client.uploader(file_stream=io.BytesIO(ts), chunk_size=len(ts) // 6,
                                   metadata={"session": session_id, "format": "typescript"})
        uploader.upload_chunk()
        uploader.upload_chunk()
        private_redis.stop()  # the broker goes away mid-upload ...
        uploader.upload_chunk()  # ... the bytes are still accepted (the task is not sent)
        assert uploader.offset == 3 * (len(ts) // 6)
        private_redis.start()  # ... and comes back
        uploader.upload()
        _close(base, ingest, session_id)
        wait_for(lambda: _status(session_id) not in (SessionStatus.OPEN, SessionStatus.CLOSING),
                 timeout=180, what="the session to be sealed after the broker restart")
        session = Session.objects.get(pk=session_id)
        assert session.status == SessionStatus.SEALED, session.error
        terminal = session.recording.streams.get(kind="terminal")
        records = [r for p in open_stream(ingest, terminal) for r in records_decode(p.body)]
        assert records == list(records_from_typescript(io.BytesIO(ts),
                                                       io.StringIO(tm.decode())))
    finally:
        worker.stop()


# ------------------------------------------------------------------ PostgreSQL restart


class LocalPostgres:
    """This machine's PostgreSQL cluster serving the test database, driven by pg_ctlcluster."""

    LOCAL_HOSTS = ("", "127.0.0.1", "localhost", "::1")

    def __init__(self, version: str, name: str, port: int) -> None:
        self.version, self.name, self.port = version, name, port

    @classmethod
    def find(cls) -> LocalPostgres | str:
        """The cluster, or why the test cannot restart it (the skip reason)."""
        settings = connection.settings_dict
        if connection.vendor != "postgresql":
            return ("restarts PostgreSQL: set DATABASE_URL to a PostgreSQL cluster on this "
                    "machine (.ci/run does)")
        if settings["HOST"] not in cls.LOCAL_HOSTS:
            return f"restarts PostgreSQL, but the database is on {settings['HOST']}"
        if not shutil.which("pg_ctlcluster") or not shutil.which("pg_isready"):
            return "restarts PostgreSQL with pg_ctlcluster, which is not installed"
        port = int(settings["PORT"] or 5432)
        listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True,
                                 text=True, check=False).stdout
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[2] == str(port) and fields[3].startswith("online"):
                if os.geteuid() != 0 and fields[4] != os.environ.get("USER"):
                    return f"restarting the cluster needs root or the {fields[4]} user"
                return cls(fields[0], fields[1], port)
        return f"no online pg_ctlcluster cluster listens on port {port}"

    def _ctl(self, action: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name,
                        action], check=True, capture_output=True, timeout=120)

    def ready(self) -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                              check=False).returncode == 0

    def stop(self) -> None:
        self._ctl("stop")  # fast mode: every connection (ours, the worker's) is cut

    def start(self) -> None:
        if not self.ready():
            self._ctl("start")
        wait_for(self.ready, timeout=60, what="PostgreSQL to accept connections")


@pytest.fixture
def local_postgres():
    found = LocalPostgres.find()
    if isinstance(found, str):
        pytest.skip(found)
    yield found
    # Whatever happened in the test, leave the cluster running for the rest of the suite.
    found.start()
    connections.close_all()


def _tus_headers(token) -> dict:
    return {**_headers(token), "Tus-Resumable": "1.0.0"}


def test_database_restarted_during_an_upload_resumes_and_completes(
        live_server, ingest, worker, local_postgres):
    base = live_server.url
    guac = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    ts, tm = synthetic_typescript(60, seed=7)
    session_id = _open(base, ingest)
    _upload(base, ingest, session_id, "timing", tm, 1 << 20)
    client = tus_client.TusClient(f"{base}/api/v1/gateway/uploads/",
                                  headers=_headers(ingest.token))
    # tuspy as a gateway runs it: on a failed request it waits, HEADs for the offset and
    # resends from there.
    uploaders = {
        fmt: client.uploader(file_stream=io.BytesIO(data), chunk_size=len(data) // 5 + 1,
                             metadata={"session": session_id, "format": fmt},
                             retries=90, retry_delay=1)
        for fmt, data in (("guac", guac), ("typescript", ts))
    }
    for uploader in uploaders.values():
        uploader.upload_chunk()
        uploader.upload_chunk()
    wait_for(lambda: Part.objects.filter(stream__recording__session_id=session_id).exists(),
             what="the worker to seal the first parts")
    typescript = uploaders["typescript"]
    accepted = typescript.offset

    connections.close_all()  # ours would only break: the test reconnects afterwards
    local_postgres.stop()
    restarter = threading.Timer(5, local_postgres.start)
    try:
        # While the database is down, gateway requests get a clear 503 with Retry-After.
        head = requests.head(typescript.url, headers=_tus_headers(ingest.token), timeout=30)
        assert head.status_code == 503, head.headers
        assert head.headers.get("Retry-After")
        patch = requests.patch(
            typescript.url, data=ts[accepted:accepted + 1000], timeout=30,
            headers={**_tus_headers(ingest.token), "Upload-Offset": str(accepted),
                     "Content-Type": "application/offset+octet-stream"})
        assert patch.status_code == 503, patch.text
        assert patch.headers.get("Retry-After")
        assert "unavailable" in patch.json()["detail"]
        # A sealing task that meets the dead database is retried with backoff, not lost.
        upload_id = typescript.url.rstrip("/").rsplit("/", 1)[-1]
        stream_seal_pending.delay(upload_id)
        wait_for(lambda: b"retry: Retry in" in worker.log.read_bytes(), timeout=30,
                 what="the worker to retry a task that met the dead database")
        # The database comes back a few seconds later; meanwhile tuspy keeps retrying.
        restarter.start()
        typescript.upload()
    finally:
        restarter.join()
        local_postgres.start()
    connections.close_all()  # the test's own connection died with the server

    uploaders["guac"].upload()
    for _ in range(30):
        response = requests.post(f"{base}/api/v1/gateway/sessions/{session_id}/close/",
                                 headers=_headers(ingest.token), json={}, timeout=30)
        if response.status_code != 503:
            break
        time.sleep(1)
    assert response.status_code == 200, response.text
    wait_for(lambda: _status(session_id) not in (SessionStatus.OPEN, SessionStatus.CLOSING),
             timeout=240, what="the session to be sealed after the database restart")
    session = Session.objects.get(pk=session_id)
    assert session.status == SessionStatus.SEALED, session.error
    uploads = {u.format: u for u in session.uploads.all()}
    assert uploads["typescript"].offset == len(ts)
    assert uploads["guac"].offset == len(guac)
    streams = {s.kind: s for s in session.recording.streams.all()}
    for kind in ("guac", "terminal", "typescript-zip"):
        stream = streams[kind]
        seqs = list(stream.parts.values_list("seq", flat=True))
        assert seqs == list(range(len(seqs))), (kind, seqs)  # none lost, none twice
        stream_verify(stream_parts(stream), signers=signers(),
                      recording=str(session.recording.pk), stream=kind)
    assert b"".join(p.body for p in open_stream(ingest, streams["guac"])) == guac
    records = [r for p in open_stream(ingest, streams["terminal"]) for r in
               records_decode(p.body)]
    assert records == list(records_from_typescript(io.BytesIO(ts), io.StringIO(tm.decode())))
