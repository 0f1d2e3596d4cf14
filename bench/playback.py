"""In-browser playback of an 8-hour terminal recording: seek by part vs fetch everything.

    .venv/bin/python bench/playback.py [--mb 200] [--hours 8] [--reseal]

1. Seals a synthetic 8-hour terminal session (mostly plain text lines, some
   colour; a burst every 0.5 s, longer idle gaps now and then) with
   ``StreamSealer`` into Django's default storage, with the Session,
   Recording, Stream and Part rows, under ``var/bench/data`` (its own SQLite
   database, storage and signer key). Reruns reuse it unless ``--reseal``.
2. Serves it with ``manage.py runserver`` (the real parts API and play page).
3. In Debian's Chromium (Playwright), as a user who may view it: unlock,
   time to first frame, then seeks to 25/50/75/99 % (time, bytes and parts
   fetched per seek), then fetching and decrypting the whole recording the
   way a player without seeking would have to — printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "var" / "bench"
DATA_DIR = BENCH_DIR / "data"
sys.path.insert(0, str(ROOT))
os.environ["KEEPERPAM_DATA_DIR"] = str(DATA_DIR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keeperpam.settings")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

PASSPHRASE = "bench passphrase, not a secret"  # noqa: S105 - a throwaway bench key
STATE = BENCH_DIR / "state.json"
WORDS = ("drwxr-xr-x root root 4096 Jan 12 09:41 etc var usr lib systemd journal kernel "
         "audit sshd session opened closed for user admin deploy nginx postgres backup "
         "INFO WARN OK GET POST 200 404 /api/v1/ health check latency ms bytes").split()


def synthetic_records(total_bytes: int, hours: float, seed: int = 7):
    """Terminal records: ~total_bytes of output spread over ``hours``."""
    from keeperpam.crypto.terminal import Record, RecordType, resize_record

    rng = random.Random(seed)
    duration = int(hours * 3600 * 1000)
    yield resize_record(0, 120, 36)
    # A burst every 0.5 s, plus idle gaps (p = 0.002, mean 62.5 s) that take ~20 % of the time.
    bursts = duration // 625
    per_burst = max(200, total_bytes // bursts)
    t, written, n = 0, 0, 0
    while t < duration:
        lines = []
        size = 0
        while size < per_burst:
            n += 1
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
            if n % 9 == 0:
                line = f"\x1b[1;32m{n:09d}\x1b[0m {words}\r\n"
            else:
                line = f"{n:09d} {words}\r\n"
            lines.append(line)
            size += len(line)
        data = "".join(lines).encode()
        yield Record(RecordType.OUTPUT, t, data)
        written += len(data)
        # Mostly steady output; now and then the user goes idle for a while.
        t += 500 if rng.random() > 0.002 else rng.randint(5_000, 120_000)
    yield Record(RecordType.OUTPUT, duration, b"$ exit\r\n")


def seal(mb: int, hours: float) -> dict:
    """Make the user, record, session and sealed parts; return what the browser needs."""
    from cryptography.hazmat.primitives import serialization

    from keeperpam.crypto import keys as crypto_keys
    from keeperpam.crypto.parts import part_parse
    from keeperpam.crypto.sealer import StreamSealer
    from policies.services import role_create
    from recordings import services
    from recordings.models import Part, Session, Stream
    from recordings.sealing import part_storage_name
    from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
    from vault import key_services
    from vault.services import record_share_grant

    stamp = int(time.time())  # the bench database outlives runs: names must not repeat
    configuration = PamConfigurationFactory(name=f"bench-{stamp}")
    record = RecordFactory(configuration=configuration, name=f"bench-8h-{stamp}",
                           graphical_recording=False, text_recording=True)
    user = UserFactory(username=f"bench-{stamp}")
    role_create(acting_user=None, name=f"bench viewers {user.pk}", users=[user],
                can_view_recordings=True, can_view_rbi_recordings=True)
    record_share_grant(record=record, user=user, access="view", acting_user=None)
    private = crypto_keys.record_key_generate()
    key_services.user_key_set(
        user=user, public_key=crypto_keys.b64u_encode(crypto_keys.public_key_der(
            private.public_key())),
        protected_private_key=crypto_keys.user_key_protect(
            private, passphrase=PASSPHRASE, user_id=str(user.pk), iterations=1_000_000))
    gateway = services.gateway_create(name=f"bench-gw-{user.pk}",
                                      configurations=[configuration], acting_user=None)
    session = services.session_open(gateway=gateway, record=record, protocol=record.protocol,
                                    launched_by=user.username)
    recording = session.recording
    stream = Stream.objects.get(recording=recording, kind="terminal")
    signer_key, _ = services.signer_key_ensure()
    public = serialization.load_der_public_key(
        crypto_keys.b64u_decode(recording.record_key.public_key))
    sealer = StreamSealer(recording=str(recording.pk), stream="terminal",
                          record_public_keys=[public], signer_key=signer_key)
    start = time.perf_counter()
    plaintext_bytes = sealed_bytes = 0
    rows = []

    def store(parts):
        nonlocal sealed_bytes
        for part in parts:
            header = part_parse(part).header
            name = part_storage_name(stream, header.seq)
            if default_storage.exists(name):
                default_storage.delete(name)
            default_storage.save(name, ContentFile(part))
            sealed_bytes += len(part)
            rows.append(Part(stream=stream, seq=header.seq, t0=header.t0, t1=header.t1,
                             final=header.final, kf=header.kf, size=len(part),
                             sha256="", storage_name=name))
        if len(rows) >= 500:
            Part.objects.bulk_create(rows)
            rows.clear()

    for record_ in synthetic_records(mb << 20, hours):
        plaintext_bytes += len(record_.data)
        store(sealer.add_record(record_))
    store(sealer.close())
    Part.objects.bulk_create(rows)
    seal_seconds = time.perf_counter() - start
    ended = session.started_at + timezone.timedelta(hours=hours)
    Stream.objects.filter(pk=stream.pk).update(state="sealed", next_seq=sealer.seq,
                                               prev=sealer.prev, last_t=int(hours * 3600_000))
    Session.objects.filter(pk=session.pk).update(status="sealed", ended_at=ended)
    state = {"mb": mb, "hours": hours, "user": user.pk, "record": record.pk,
             "session": str(session.pk), "parts": sealer.seq, "output_bytes": plaintext_bytes,
             "sealed_bytes": sealed_bytes, "seal_seconds": round(seal_seconds, 1)}
    STATE.write_text(json.dumps(state, indent=2))
    return state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SEEKS_JS = """async (fractions) => {
  const { player, source } = window.kpPlayer;
  const out = [];
  for (const f of fractions) {
    const bytes = source.bytesFetched, parts = source.partsFetched;
    const t = performance.now();
    await player.seek(Math.floor(player.duration * f));
    out.push({fraction: f, ms: performance.now() - t, bytes: source.bytesFetched - bytes,
              parts: source.partsFetched - parts});
  }
  return out;
}"""

FULL_JS = """async () => {
  const { source } = window.kpPlayer;
  const { PartSource } = await import("/static/vault/js/players/parts.js");
  const all = new PartSource({session: source.session, stream: source.stream,
                              recording: source.recording, signers: source.signers,
                              recordKeys: source.recordKeys, cacheSize: 1});
  const t = performance.now();
  await all.refresh();
  let plaintext = 0;
  for (let i = 0; i < all.parts.length; i++) {
    const opened = await all.open(i, {chained: true});
    plaintext += opened.plaintext.length;
  }
  return {ms: performance.now() - t, bytes: all.bytesFetched, parts: all.partsFetched, plaintext};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="terminal output to generate (MiB)")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--reseal", action="store_true", help="seal again even if cached")
    args = parser.parse_args()

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    state = json.loads(STATE.read_text()) if STATE.exists() else None
    if args.reseal or not state or state["mb"] != args.mb or state["hours"] != args.hours:
        print(f"sealing {args.mb} MiB over {args.hours} h …", flush=True)
        state = seal(args.mb, args.hours)
        cached = False
    else:
        cached = True
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(pk=state["user"]))
    cookie = client.cookies["sessionid"].value

    port = free_port()
    env = {**os.environ, "KEEPERPAM_DATA_DIR": str(DATA_DIR), "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        results = browse(base, cookie, state)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report(state, cached, results)


def browse(base: str, cookie: str, state: dict) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    url = f"{base}/records/{state['record']}/sessions/{state['session']}/play/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#kp-unlock:not([hidden])", timeout=30_000)
        page.fill("#kp-unlock input[name=passphrase]", PASSPHRASE)
        start = time.perf_counter()
        page.click("#kp-unlock button")
        page.wait_for_function("window.kpPlayer && window.kpPlayer.ready", timeout=120_000,
                               polling=10)
        first_frame = time.perf_counter() - start
        first = page.evaluate("({bytes: kpPlayer.source.bytesFetched, "
                              "parts: kpPlayer.source.partsFetched, "
                              "listed: kpPlayer.source.parts.length, "
                              "duration: kpPlayer.player.duration})")
        seeks = page.evaluate(SEEKS_JS, [0.25, 0.5, 0.75, 0.99])
        full = page.evaluate(FULL_JS)
        browser.close()
    return {"first_frame": first_frame, "first": first, "seeks": seeks, "full": full}


def report(state: dict, cached: bool, r: dict) -> None:
    mib = 1 << 20
    print()
    print(f"recording: {state['hours']:g} h of terminal output, "
          f"{state['output_bytes'] / mib:.1f} MiB plaintext → {state['parts']} parts, "
          f"{state['sealed_bytes'] / mib:.1f} MiB sealed")
    print(f"sealing (StreamSealer, pyte keyframes): {state['seal_seconds']:.1f} s "
          f"({state['output_bytes'] / mib / max(state['seal_seconds'], 1e-9):.1f} MiB/s)"
          + ("  [cached from an earlier run]" if cached else ""))
    print(f"first frame after unlock (PBKDF2 1M, key share, signers, part list of "
          f"{r['first']['listed']} parts, part 0): {r['first_frame'] * 1000:.0f} ms, "
          f"{r['first']['bytes'] / 1024:.0f} KiB in {r['first']['parts']} part(s)")
    print()
    print(f"{'':<26}{'time':>12}{'fetched':>14}{'parts':>8}")
    for seek in r["seeks"]:
        print(f"{'seek to ' + str(round(seek['fraction'] * 100)) + ' %':<26}"
              f"{seek['ms']:>10.0f} ms{seek['bytes'] / 1024:>10.0f} KiB{seek['parts']:>8}")
    full = r["full"]
    print(f"{'fetch + decrypt all':<26}{full['ms']:>10.0f} ms"
          f"{full['bytes'] / mib:>10.1f} MiB{full['parts']:>8}")
    worst = max(s["ms"] for s in r["seeks"]) or 1
    print(f"\nslowest seek is {full['ms'] / worst:.0f}× faster than fetching everything and "
          f"fetches {full['bytes'] / max(1, max(s['bytes'] for s in r['seeks'])):.0f}× "
          "fewer bytes")


if __name__ == "__main__":
    main()
