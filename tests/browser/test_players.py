"""The session players in Debian's Chromium against a live server with real sealed sessions.

Sessions are recorded through the ingest services (embedded default: eager
Celery seals them on the spot), the user's key is protected for real
(1,000,000 PBKDF2 iterations) and unlocked in the page, and the page reads
only the public API. Oracles are independent of the player: the terminal
screen after a seek is compared with a pyte emulator fed the sealed records
straight from the start; the graphical display with a plain Guacamole
client fed the decrypted instructions straight up to the same frame.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from keeperpam.crypto import keys as crypto_keys
from keeperpam.crypto.parts import stream_open
from keeperpam.crypto.terminal import RecordType, TerminalEmulator, records_decode
from recordings import services
from recordings.models import Part, Session, SignerKey, Stream
from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
from tests.keyring import share, viewer_role
from tests.paths import FIXTURES
from vault import key_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSPHRASE = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


# ------------------------------------------------------------------ server-side setup


@pytest.fixture
def data_dirs(data_dirs, eager_celery, settings):
    """The shared data directories, with tasks run in-process and fast password hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return data_dirs


@dataclass
class Setup:
    gateway: object
    record: object
    viewer: object
    private_key: object


@pytest.fixture(scope="session")
def viewer_private_key():
    return crypto_keys.record_key_generate()


@pytest.fixture
def setup(data_dirs, viewer_private_key) -> Setup:
    configuration = PamConfigurationFactory()
    record = RecordFactory(configuration=configuration, name="db-prod-01",
                           graphical_recording=True, text_recording=True)
    viewer = UserFactory(username="auditor")
    viewer_role(viewer)
    share(record, viewer)
    protected = crypto_keys.user_key_protect(viewer_private_key, passphrase=PASSPHRASE,
                                             user_id=str(viewer.pk), iterations=1_000_000)
    key_services.user_key_set(
        user=viewer, protected_private_key=protected,
        public_key=crypto_keys.b64u_encode(crypto_keys.public_key_der(
            viewer_private_key.public_key())))
    gateway = services.gateway_create(name="gw-players", configurations=[configuration],
                                      acting_user=None)
    return Setup(gateway, record, viewer, viewer_private_key)


def upload(setup: Setup, session: Session, fmt: str, data: bytes, *, length=True) -> None:
    created = services.upload_create(gateway=setup.gateway, session_id=str(session.pk),
                                     format=fmt, length=len(data) if length else None)
    services.upload_append(upload_id=created.pk, gateway=setup.gateway, offset=0,
                           body=io.BytesIO(data), body_limit=len(data) + 1,
                           length=len(data) if length else None)


def record_session(setup: Setup, *, guac: bytes | None = None,
                   typescript: tuple[bytes, bytes] | None = None,
                   end: str = "close") -> Session:
    """A recorded session sealed by the ingest pipeline; ``end``: close, abandon or live."""
    session = services.session_open(gateway=setup.gateway, record=setup.record,
                                    protocol=setup.record.protocol, launched_by="alice",
                                    client_address="10.0.0.9")
    if guac is not None:
        upload(setup, session, "guac", guac)
    if typescript is not None:
        upload(setup, session, "typescript", typescript[0], length=end != "live")
        upload(setup, session, "timing", typescript[1], length=end != "live")
    if end == "close":
        services.session_close(session=session, exit_status=0)
    elif end == "abandon":
        services.sessions_abandon_idle(now=timezone.now() + timedelta(days=1))
    return Session.objects.get(pk=session.pk)


def synthetic_typescript(seconds: int = 45) -> tuple[bytes, bytes]:
    """A guacd-style typescript: a line every 0.5 s, a canary line at 10k+5 s."""
    out, timing = [b"[BEGIN TYPESCRIPT]\n"], []
    for n in range(seconds * 2):
        t = n / 2
        if n % 20 == 10:
            line = f"CANARY-{n // 20} secret output at {t:.1f}s\r\n".encode()
        else:
            line = f"$ step {n:03d}  \x1b[32mok\x1b[0m  t={t:5.1f}s  " \
                   f"{'#' * (n % 37)}\r\n".encode()
        out.append(line)
        timing.append(f"{0.0 if n == 0 else 0.5:.6f} {len(line)}\n".encode())
    return b"".join(out), b"".join(timing)


def stream_of(session: Session, kind: str) -> Stream:
    return Stream.objects.get(recording__session=session, kind=kind)


def sealed_records(setup: Setup, stream: Stream) -> list:
    """The sealed terminal records as a straight replay sees them (keyframes skipped)."""
    record_key = stream.recording.record_key
    private = crypto_keys.record_key_share_unwrap(
        record_key.shares.get(user=setup.viewer).share, user_private_key=setup.private_key,
        user_id=str(setup.viewer.pk), record_kid=record_key.key_id)
    signers = {s.key_id: crypto_keys.signer_public_key_load(
        crypto_keys.b64u_decode(s.public_key)) for s in SignerKey.objects.all()}
    parts = []
    for part in stream.parts.order_by("seq"):
        with default_storage.open(part.storage_name, "rb") as handle:
            parts.append(handle.read())
    records = []
    try:
        for opened in stream_open(parts, record_private_key=private, signers=signers,
                                  recording=str(stream.recording_id), stream="terminal"):
            records += [r for r in records_decode(opened.plaintext)
                        if r.type is not RecordType.KEYFRAME]
    except Exception as exc:  # an incomplete stream still yields every part
        if "incomplete" not in type(exc).__name__.lower():
            raise
    return records


def pyte_screen(records, t: int) -> str:
    emulator = TerminalEmulator()
    for record in records:
        if record.t > t:
            break
        emulator.feed(record)
    return "\n".join(line.rstrip() for line in emulator.screen.display)


def flip_byte(part: Part) -> None:
    """Flip one ciphertext byte of a stored part, through Django's default storage."""
    with default_storage.open(part.storage_name, "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0x01
    default_storage.delete(part.storage_name)
    default_storage.save(part.storage_name, ContentFile(bytes(data)))


# ------------------------------------------------------------------ browser helpers


@pytest.fixture
def page_for(browser, live_server):
    """A function opening the play page of a session as a signed-in user, unlocked."""
    contexts = []

    def open_page(setup: Setup, session: Session, *, stream: str | None = None,
                  user=None, expect_ready: bool = True):
        client = Client()
        client.force_login(user or setup.viewer)
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                              "url": live_server.url}])
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        url = (f"{live_server.url}/records/{session.record_id}/sessions/{session.pk}/play/"
               + (f"?stream={stream}" if stream else ""))
        page.response = page.goto(url)
        if not expect_ready:
            return page
        page.wait_for_selector("#kp-unlock:not([hidden])", timeout=15_000)
        page.fill("#kp-unlock input[name=passphrase]", PASSPHRASE)
        page.click("#kp-unlock button")
        page.wait_for_function("window.kpPlayer && (window.kpPlayer.ready || "
                               "document.querySelector('[data-banner=tampered]'))",
                               timeout=30_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def screen_text(page) -> str:
    return page.evaluate("window.kpPlayer.player.screenText()")


def seek(page, t: int) -> None:
    page.evaluate("(t) => window.kpPlayer.player.seek(t)", t)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


# ------------------------------------------------------------------ terminal


def test_terminal_fixture_seek_to_80_percent_matches_straight_replay(setup, page_for):
    typescript = (FIXTURES / "guacd-ssh-short.typescript").read_bytes()
    timing = (FIXTURES / "guacd-ssh-short.typescript.timing").read_bytes()
    session = record_session(setup, typescript=(typescript, timing))
    stream = stream_of(session, "terminal")
    page = page_for(setup, session, stream="terminal")
    duration = page.evaluate("window.kpPlayer.player.duration")
    assert duration == stream.parts.order_by("-seq").first().t1
    target = int(duration * 0.8)

    seek(page, target)

    assert screen_text(page) == pyte_screen(sealed_records(setup, stream), target)
    assert "Debian GNU/Linux" in page.evaluate("window.kpPlayer.player.bufferText()")
    assert not page.errors


def test_terminal_seek_opens_one_part_from_its_keyframe(setup, page_for):
    session = record_session(setup, typescript=synthetic_typescript(45))
    stream = stream_of(session, "terminal")
    assert stream.parts.count() >= 4
    page = page_for(setup, session, stream="terminal")
    records = sealed_records(setup, stream)
    duration = page.evaluate("window.kpPlayer.player.duration")
    fetched_before = page.evaluate("window.kpPlayer.source.partsFetched")

    for fraction in (0.8, 0.25, 0.99, 0.5):
        target = int(duration * fraction)
        seek(page, target)
        assert screen_text(page) == pyte_screen(records, target), fraction
    # Each seek fetched at most the one part that covers its target.
    assert page.evaluate("window.kpPlayer.source.partsFetched") - fetched_before <= 4

    # Play on from 80 % at 16×: crossing into the next part (chain checked,
    # keyframe skipped) keeps the screen identical to the straight replay.
    seek(page, int(duration * 0.8))
    page.evaluate("window.kpPlayer.player.setSpeed(16); window.kpPlayer.player.play()")
    page.wait_for_function("!window.kpPlayer.player.playing", timeout=20_000)
    assert page.evaluate("window.kpPlayer.player.position") == duration
    assert screen_text(page) == pyte_screen(records, duration)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"window.kpPlayer.player.position === {duration - 5000}")
    seek(page, int(duration * 0.8))
    screenshot(page, "player-terminal.png")
    assert not page.errors


def test_tampered_part_shows_the_banner_and_none_of_its_plaintext(setup, page_for):
    session = record_session(setup, typescript=synthetic_typescript(45))
    stream = stream_of(session, "terminal")
    # The part holding CANARY-2 (printed at 25 s).
    bad = stream.parts.filter(t0__lte=25_000, t1__gte=25_000).get()
    flip_byte(bad)
    page = page_for(setup, session, stream="terminal")

    # Playing straight through stops before the altered part.
    page.evaluate("window.kpPlayer.player.setSpeed(16); window.kpPlayer.player.play()")
    page.wait_for_selector("[data-banner=tampered]", timeout=30_000)
    text = page.evaluate("window.kpPlayer.player.bufferText()")
    assert "CANARY-1" in text or bad.seq <= 1
    assert "CANARY-2" not in text
    banner = page.inner_text("[data-banner=tampered]")
    assert "altered" in banner
    assert f"Part {bad.seq + 1}" in banner

    # Seeking into it shows nothing from it either.
    seek(page, 25_500)
    assert "CANARY-2" not in page.evaluate("window.kpPlayer.player.bufferText()")
    assert page.evaluate("window.kpPlayer.player.badRanges.length") == 1
    screenshot(page, "player-terminal-tampered.png")


def test_incomplete_recording_is_playable_up_to_its_last_part(setup, page_for):
    session = record_session(setup, typescript=synthetic_typescript(40), end="abandon")
    assert session.status == "incomplete"
    stream = stream_of(session, "terminal")
    last = stream.parts.order_by("-seq").first()
    assert not last.final
    page = page_for(setup, session, stream="terminal")

    page.wait_for_selector("[data-banner=incomplete]")
    assert "incomplete" in page.inner_text("[data-banner=incomplete]")
    seek(page, last.t1)
    assert screen_text(page) == pyte_screen(sealed_records(setup, stream), last.t1)
    assert "CANARY-3" in page.evaluate("window.kpPlayer.player.bufferText()")


def test_live_session_shows_new_parts_as_they_are_sealed(setup, page_for):
    typescript, timing = synthetic_typescript(60)
    lines_ts, lines_tm = typescript.split(b"\n"), timing.split(b"\n")
    first_ts = b"\n".join(lines_ts[:50]) + b"\n"  # header + 49 lines (≈ 24 s)
    first_tm = b"\n".join(lines_tm[:49]) + b"\n"
    session = services.session_open(gateway=setup.gateway, record=setup.record,
                                    protocol=setup.record.protocol, launched_by="alice")
    uploads = {}
    for fmt, data in (("typescript", first_ts), ("timing", first_tm)):
        created = services.upload_create(gateway=setup.gateway, session_id=str(session.pk),
                                         format=fmt, length=None)
        services.upload_append(upload_id=created.pk, gateway=setup.gateway, offset=0,
                               body=io.BytesIO(data), body_limit=len(data) + 1)
        uploads[fmt] = (created, len(data))
    stream = stream_of(session, "terminal")
    before = stream.parts.count()
    assert before >= 1
    page = page_for(setup, session, stream="terminal")
    assert page.is_visible("#kp-live")
    duration = page.evaluate("window.kpPlayer.player.duration")

    rest = {"typescript": typescript[len(first_ts):], "timing": timing[len(first_tm):]}
    for fmt, (created, offset) in uploads.items():
        services.upload_append(upload_id=created.pk, gateway=setup.gateway, offset=offset,
                               body=io.BytesIO(rest[fmt]), body_limit=len(rest[fmt]) + 1)
    assert stream.parts.count() > before

    page.wait_for_function(f"window.kpPlayer.player.duration > {duration}", timeout=10_000)
    services.session_close(session=session, exit_status=0)
    page.wait_for_selector("#kp-live", state="hidden", timeout=20_000)


def test_play_page_is_404_without_the_right_to_view_recordings(setup, page_for):
    session = record_session(setup, typescript=synthetic_typescript(5))
    stranger = UserFactory(username="engineer")
    page = page_for(setup, session, user=stranger, expect_ready=False)
    assert page.response.status == 404


# ------------------------------------------------------------------ graphical


def test_graphical_seek_to_80_percent_matches_straight_replay(setup, page_for):
    session = record_session(setup, guac=(FIXTURES / "guacd-ssh-short.guac").read_bytes())
    page = page_for(setup, session, stream="guac")
    page.wait_for_function("window.kpPlayer.player.loadedIndex === "
                           "window.kpPlayer.source.parts.length - 1", timeout=20_000)
    duration = page.evaluate("window.kpPlayer.player.duration")
    assert duration > 5000

    page.evaluate(f"window.kpPlayer.player.seek({int(duration * 0.8)})")
    position = page.evaluate("window.kpPlayer.player.position")
    assert abs(position - duration * 0.8) < 1000
    seeked = page.evaluate("window.kpPlayer.player.displayHash()")
    straight = page.evaluate("(p) => window.kpPlayer.player.straightHash(p)", position)

    assert seeked["width"] >= 640
    assert seeked == straight
    # Something was drawn (not a blank canvas).
    blank = page.evaluate("""() => {
      const c = window.kpPlayer.player.display.flatten();
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const first = d.slice(0, 4).join();
      for (let i = 0; i < d.length; i += 4 * 997) {
        if (d.slice(i, i + 4).join() !== first) return false;
      }
      return true;
    }""")
    assert not blank
    screenshot(page, "player-graphical.png")
    assert not page.errors
