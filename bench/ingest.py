"""HTTP ingest of a synthetic terminal recording, end to end, with the raw-crypto baseline.

    .venv/bin/python bench/ingest.py [--mb 1024] [--chunk-mb 8]

In a fresh data directory (SQLite unless DATABASE_URL is set) it registers a
gateway and a recorded record, starts gunicorn on loopback (and, when
CELERY_BROKER_URL is set, a Celery worker; otherwise sealing runs eagerly in
the server), writes a typescript + timing of ``--mb`` MiB, uploads both with
tuspy in ``--chunk-mb`` chunks, closes the session and waits until it is
sealed. Printed in one run:

* HTTP ingest MB/s (upload start → last PATCH acknowledged) and end-to-end
  MB/s (→ session sealed, typescript zip included);
* peak RSS (VmHWM) of the server and worker processes;
* the raw-crypto baseline over the same bytes: AES-256-GCM in 1 MiB chunks
  plus SHA-256 (what sealing cannot beat).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 1 << 20


def write_recording(directory: Path, total: int) -> tuple[Path, Path]:
    """A typescript of ``total`` bytes of shell-like output and its classic timing file."""
    rng = random.Random(5)
    words = [b"ls", b"-la", b"/var/log", b"total", b"drwxr-xr-x", b"root", b"\x1b[32mok\x1b[0m",
             b"\x1b[1;34mdir\x1b[0m", b"1024", b"Nov", b"syslog", b"error:", b"warning"]
    ts, tm = directory / "bench.tys", directory / "bench.tm"
    written = 0
    with open(ts, "wb") as out, open(tm, "w") as timing:
        out.write(b'Script started [COLUMNS="120" LINES="40"]\n')
        while written < total:
            lines = b"".join(b" ".join(rng.choices(words, k=rng.randint(4, 14))) + b"\r\n"
                             for _ in range(rng.randint(5, 200)))
            lines = lines[: total - written]
            out.write(lines)
            timing.write(f"{rng.uniform(0.001, 0.3):.6f} {len(lines)}\n")
            written += len(lines)
    return ts, tm


def peak_rss_kib(pid: int) -> int:
    """VmHWM of ``pid`` plus its children (gunicorn workers, Celery pool)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total = max(total, int(line.split()[1]))
        except OSError:
            continue
    return total


class RssWatch(threading.Thread):
    """Samples the peak RSS of a process tree (children come and go)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, peak_rss_kib(self.pid))
            time.sleep(0.2)


def baseline(path: Path) -> float:
    """MB/s of AES-256-GCM (1 MiB chunks) + SHA-256 over the file's bytes."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(secrets.token_bytes(32))
    size = path.stat().st_size
    start = time.perf_counter()
    with open(path, "rb") as source:
        while block := source.read(MiB):
            hashlib.sha256(aead.encrypt(secrets.token_bytes(12), block, None)).digest()
    return size / MiB / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--chunk-mb", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="keeperpam-bench-"))
    os.environ["KEEPERPAM_DATA_DIR"] = str(work / "data")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keeperpam.settings")
    os.environ["KEEPERPAM_UPLOAD_CHUNK_MAX_BYTES"] = str(args.chunk_mb * MiB)
    (work / "data").mkdir()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from recordings import services
    from recordings.models import Session
    from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
    from tests.keyring import enrol, share, viewer_role

    configuration = PamConfigurationFactory()
    record = RecordFactory(configuration=configuration, graphical_recording=False,
                           text_recording=True)
    viewer = UserFactory()
    viewer_role(viewer)
    share(record, viewer)
    enrol(viewer)
    gateway = services.gateway_create(name="bench", configurations=[configuration],
                                      acting_user=None)
    _, token = services.gateway_credential_issue(gateway=gateway, acting_user=None)

    print(f"writing a {args.mb} MiB synthetic typescript ...", flush=True)
    ts_path, tm_path = write_recording(work, args.mb * MiB)
    size = ts_path.stat().st_size + tm_path.stat().st_size

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ)
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "keeperpam.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", "2", "--timeout", "900", "--log-level", "warning"],
        cwd=ROOT, env=env)
    worker = None
    if os.environ.get("CELERY_BROKER_URL"):
        queue = f"bench-{secrets.token_hex(4)}"
        env["CELERY_TASK_DEFAULT_QUEUE"] = queue
        server.terminate()
        server.wait()
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "keeperpam.wsgi", "-b", f"127.0.0.1:{port}",
             "-w", "2", "--timeout", "900", "--log-level", "warning"], cwd=ROOT, env=env)
        worker = subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "keeperpam.celery", "worker", "-Q", queue,
             "--concurrency=1", "-l", "warning"], cwd=ROOT, env=env)
    watches = [RssWatch(server.pid)] + ([RssWatch(worker.pid)] if worker else [])
    for watch in watches:
        watch.start()
    import requests
    from tusclient import client as tus_client

    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Gateway {token}"}
    try:
        for _ in range(100):
            try:
                requests.options(f"{base}/api/v1/gateway/uploads/", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.2)
        answer = requests.post(f"{base}/api/v1/gateway/sessions/", headers=headers, timeout=30,
                               json={"record": record.pk, "protocol": record.protocol,
                                     "launched_by": "bench"}).json()
        client = tus_client.TusClient(f"{base}/api/v1/gateway/uploads/", headers=headers)
        start = time.perf_counter()
        for fmt, path in (("timing", tm_path), ("typescript", ts_path)):
            client.uploader(file_path=str(path), chunk_size=args.chunk_mb * MiB,
                            metadata={"session": answer["id"], "format": fmt}).upload()
        uploaded = time.perf_counter() - start
        requests.post(f"{base}/api/v1/gateway/sessions/{answer['id']}/close/", headers=headers,
                      json={}, timeout=900)
        while Session.objects.filter(pk=answer["id"], status__in=["open", "closing"]).exists():
            time.sleep(0.2)
        sealed = time.perf_counter() - start
        session = Session.objects.get(pk=answer["id"])
        parts = sum(s.next_seq for s in session.recording.streams.all())
    finally:
        for watch in watches:
            watch.running = False
        for process in filter(None, (server, worker)):
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    raw = baseline(ts_path)
    mode = "Celery worker on " + os.environ["CELERY_BROKER_URL"] if worker else \
        "eager (sealing inside the server)"
    print(io.StringIO().getvalue() + f"""
ingest benchmark: {size / MiB:.0f} MiB typescript+timing, {args.chunk_mb} MiB PATCHes, {mode}
  session status:          {session.status} ({parts} sealed parts)
  HTTP ingest:             {size / MiB / uploaded:8.1f} MiB/s  ({uploaded:.1f} s)
  end to end (sealed+zip): {size / MiB / sealed:8.1f} MiB/s  ({sealed:.1f} s)
  peak RSS server:         {watches[0].peak / 1024:8.1f} MiB
  peak RSS worker:         {(watches[1].peak / 1024 if worker else 0):8.1f} MiB""" + (
        "" if worker else " (no separate worker)") + f"""
  raw-crypto baseline:     {raw:8.1f} MiB/s  (AES-256-GCM 1 MiB chunks + SHA-256)""")
    return 0 if session.status == "sealed" else 1


if __name__ == "__main__":
    sys.exit(main())
