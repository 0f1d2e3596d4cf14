"""The online CLI: its HTTP client and settings, then end to end against a live server.

The end-to-end tests run ``python -m keeperpam.cli`` as a real subprocess
with the password and passphrase in the environment and a private
``XDG_CONFIG_HOME``, against pytest-django's live server; a gateway records
real fixture sessions through the ingest API (Celery eager), and what the
CLI downloads is replayed with ``scriptreplay`` and ``asciinema cat``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.core.files.storage import default_storage
from tusclient import client as tus_client

from keeperpam.cli import client as cli_client
from keeperpam.cli import config as cli_config
from keeperpam.crypto.sealer import StreamSealer
from recordings import services as recording_services
from recordings.models import Part, Session
from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
from tests.keyring import share, viewer_role
from tests.paths import FIXTURES
from tests.tools import asciinema_cat, scriptreplay
from vault.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # what UserFactory sets
PASSPHRASE = "a long vault passphrase 🔑 for tests"
GUACD_TS = FIXTURES / "guacd-ssh-short.typescript"
GUACD_TM = FIXTURES / "guacd-ssh-short.typescript.timing"
GUACD_GUAC = FIXTURES / "guacd-ssh-short.guac"


# ------------------------------------------------------------------ settings and client


@pytest.fixture
def xdg(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def test_settings_live_under_xdg_config_home_owner_only(xdg) -> None:
    path = cli_config.settings_save(cli_config.Settings(
        url="https://vault.example.test/api/v1/", username="alice", user_id=7, token="t0k"))
    assert path == xdg / "keeperpam" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cli_config.settings_load().token == "t0k"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left
    assert cli_config.settings_clear()
    with pytest.raises(cli_config.ConfigError, match="not logged in"):
        cli_config.settings_load()


def test_settings_default_to_dot_config(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli_config.config_dir() == tmp_path / ".config" / "keeperpam"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert cli_config.config_dir() == tmp_path / ".config" / "keeperpam"


def test_damaged_settings_are_a_clear_error(xdg) -> None:
    (xdg / "keeperpam").mkdir(parents=True)
    (xdg / "keeperpam" / "config.json").write_text("{not json")
    with pytest.raises(cli_config.ConfigError, match="login"):
        cli_config.settings_load()


@pytest.mark.parametrize(("typed", "base"), [
    ("https://vault.example.test", "https://vault.example.test/api/v1/"),
    ("vault.example.test/", "https://vault.example.test/api/v1/"),
    ("http://localhost:8000/api/v1", "http://localhost:8000/api/v1/"),
    ("https://example.test/keeperpam/", "https://example.test/keeperpam/api/v1/"),
])
def test_api_base(typed, base) -> None:
    assert cli_client.api_base(typed) == base


def test_server_urls_are_re_anchored_on_the_configured_origin() -> None:
    api = cli_client.ApiClient("https://vault.example.test/api/v1/", "tok")
    assert api.url("records/") == "https://vault.example.test/api/v1/records/"
    # A pagination link or part URL naming another host (or plain http) never gets the token.
    assert (api.url("http://evil.example/api/v1/records/?page=2")
            == "https://vault.example.test/api/v1/records/?page=2")


def _response(status: int, body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


@pytest.mark.parametrize(("status", "body", "message"), [
    (404, {"detail": "Not found."}, "not found or not permitted"),
    (401, {"detail": "Invalid token."}, "not logged in, or the token was revoked: run `login` "
     "again"),
    (400, {"detail": "Invalid input: Unable to log in\n with provided credentials.",
           "errors": {}}, "Invalid input: Unable to log in with provided credentials."),
    (409, {"detail": "A different key."}, "the server answered 409: A different key."),
])
def test_errors_become_one_line(status, body, message) -> None:
    error = cli_client.ApiClient.error(_response(status, body))
    assert str(error) == message
    assert error.status == status
    assert isinstance(error, cli_client.NotFoundOrNotPermitted) == (status == 404)


def test_unreachable_server_is_one_line() -> None:
    api = cli_client.ApiClient("http://127.0.0.1:9/api/v1/")
    with pytest.raises(cli_client.ApiError, match=r"^cannot reach 127\.0\.0\.1:9: "):
        api.get("me/")


# ------------------------------------------------------------------ end to end


@dataclass
class Cli:
    """One person's CLI: their own config directory and secrets."""

    username: str
    home: Path
    passphrase: str = PASSPHRASE

    def __call__(self, *args: object, passphrase: str | None = None,
                 timeout: int = 120) -> subprocess.CompletedProcess:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("KEEPERPAM_")}
        env.update(PYTHONPATH=str(ROOT), HOME=str(self.home),
                   XDG_CONFIG_HOME=str(self.home / "xdg"), KEEPERPAM_PASSWORD=PASSWORD,
                   KEEPERPAM_PASSPHRASE=passphrase or self.passphrase, TZ="Europe/Paris")
        return subprocess.run([sys.executable, "-m", "keeperpam.cli", *map(str, args)],
                              cwd=self.home, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def ok(self, *args: object) -> subprocess.CompletedProcess:
        result = self(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    @property
    def config_dir(self) -> Path:
        return self.home / "xdg" / "keeperpam"


@dataclass
class Vault:
    base: str
    record: object
    gateway_token: str
    alice: Cli
    tmp: Path

    def person(self, name: str) -> Cli:
        home = self.tmp / f"home-{name}"
        home.mkdir()
        return Cli(name, home)

    def record_session(self) -> str:
        """A gateway records the guacd fixtures (typescript, timing, guac); returns the id."""
        headers = {"Authorization": f"Gateway {self.gateway_token}"}
        answer = requests.post(f"{self.base}/api/v1/gateway/sessions/", headers=headers,
                               json={"record": self.record.pk, "protocol": "ssh",
                                     "launched_by": "alice", "client_address": "10.0.0.9"},
                               timeout=30)
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["id"]
        tus = tus_client.TusClient(f"{self.base}/api/v1/gateway/uploads/", headers=headers)
        for fmt, path in (("timing", GUACD_TM), ("typescript", GUACD_TS), ("guac", GUACD_GUAC)):
            tus.uploader(file_stream=io.BytesIO(path.read_bytes()), chunk_size=1 << 20,
                         metadata={"session": session_id, "format": fmt}).upload()
        closed = requests.post(f"{self.base}/api/v1/gateway/sessions/{session_id}/close/",
                               headers=headers, json={"exit_status": 0}, timeout=120)
        assert closed.status_code == 200, closed.text
        assert Session.objects.get(pk=session_id).status == "sealed"
        return session_id


@pytest.fixture
def vault(live_server, transactional_db, data_dirs, eager_celery, tmp_path) -> Vault:
    """A record alice may view the recordings of; alice logged in and enrolled by the CLI."""
    configuration = PamConfigurationFactory()
    record = RecordFactory(name="db-primary", configuration=configuration,
                           graphical_recording=True, text_recording=True)
    alice_user = UserFactory(username="alice")
    viewer_role(alice_user)
    share(record, alice_user)
    gateway = recording_services.gateway_create(name="gw-cli", configurations=[configuration],
                                                acting_user=None)
    _, token = recording_services.gateway_credential_issue(gateway=gateway, acting_user=None)
    home = tmp_path / "home-alice"
    home.mkdir()
    vault = Vault(live_server.url, record, token, Cli("alice", home), tmp_path)
    vault.alice.ok("login", live_server.url, "--username", "alice")
    vault.alice.ok("enrol")
    return vault


def test_login_enrol_records_sessions_download_replays_like_the_original(vault) -> None:
    alice = vault.alice
    session_id = vault.record_session()

    records = alice.ok("records").stdout.splitlines()
    assert records[0].split() == ["ID", "NAME", "TYPE", "PROTOCOL", "FOLDER", "RECORDINGS"]
    row = next(line.split() for line in records[1:] if "db-primary" in line)
    assert row[0] == str(vault.record.pk)
    assert row[-1] == "yes"
    assert "db-primary" in alice.ok("records", "--search", "primary").stdout
    assert alice.ok("records", "--search", "nothing-like-it").stdout == ""

    sessions = alice.ok("sessions", vault.record.pk).stdout.splitlines()
    assert sessions[0].split() == ["SESSION", "USER", "START", "DURATION", "PROTOCOL",
                                   "STATUS", "STREAMS"]
    assert session_id in sessions[1]
    assert "complete" in sessions[1]
    assert "CET" in sessions[1] or "CEST" in sessions[1]  # the viewer's time zone (TZ)
    assert "typescript-zip" in sessions[1]
    assert alice.ok("sessions", "db-primary").stdout == "\n".join(sessions) + "\n"

    # zip: unzip, and scriptreplay plays what the original pair plays.
    result = alice.ok("download", session_id, "--format", "zip", "-o", "session.zip",
                      "--progress")
    assert "downloading [" in result.stderr
    assert "100%" in result.stderr
    archive = zipfile.ZipFile(alice.home / "session.zip")
    names = sorted(archive.namelist())
    assert [Path(n).suffix for n in names] == [".tm", ".tys"]
    archive.extractall(alice.home / "unzipped")
    replayed = scriptreplay(alice.home / "unzipped" / names[0],
                            alice.home / "unzipped" / names[1])
    assert replayed == scriptreplay(GUACD_TM, GUACD_TS)
    assert b"logout" in replayed

    # typescript: the same replay, written straight as a pair (default name, no --record hint).
    result = alice.ok("download", session_id, "--format", "typescript", "-o", "pair")
    assert "scriptreplay --timing pair.tm pair.tys" in result.stderr
    assert scriptreplay(alice.home / "pair.tm", alice.home / "pair.tys") == replayed

    # asciicast: accepted by asciinema; default file name <record>-<start>.cast.
    alice.ok("download", session_id, "--format", "asciicast", "--record", vault.record.pk)
    [cast] = alice.home.glob("db-primary-*.cast")
    assert json.loads(cast.read_text().splitlines()[0])["version"] == 2
    status, output = asciinema_cat(cast)
    assert status == 0, output[-500:]
    assert b"logout" in output
    assert b"sudo: command not found" in output

    # guac: the recorded protocol dump, byte for byte.
    alice.ok("download", session_id, "--format", "guac", "-o", "session.guac")
    assert (alice.home / "session.guac").read_bytes() == GUACD_GUAC.read_bytes()
    refused = alice("download", session_id, "--format", "guac", "-o", "session.guac")
    assert refused.returncode == 1
    assert "exists" in refused.stderr

    # Each download was announced to the audit trail (the refused one fetched nothing).
    downloads = AuditEvent.objects.filter(action="recording.download", actor__username="alice")
    assert downloads.count() == 4

    # Neither the passphrase, the password nor a key is ever written to the config dir.
    files = [p for p in alice.config_dir.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["config.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    stored = files[0].read_bytes()
    assert PASSPHRASE.encode() not in stored
    assert PASSWORD.encode() not in stored
    assert b"PRIVATE" not in stored
    assert b"protected" not in stored
    assert set(json.loads(stored)) == {"url", "username", "user_id", "token"}


def test_wrong_passphrase_and_not_logged_in_are_clear_errors(vault) -> None:
    alice = vault.alice
    assert "unlocked vault key" in alice.ok("unlock").stdout
    wrong = alice("unlock", passphrase="not the passphrase")
    assert wrong.returncode == 4
    assert wrong.stderr.startswith("key: ")
    assert "wrong passphrase" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1

    again = alice("enrol")
    assert again.returncode == 1
    assert "already enrolled" in again.stderr
    assert "--reset" in again.stderr

    # --reset replaces the key: the new passphrase opens it, the old one no longer does.
    reset = alice("enrol", "--reset", passphrase="a brand new passphrase")
    assert reset.returncode == 0, reset.stderr
    assert alice("unlock", passphrase="a brand new passphrase").returncode == 0
    assert alice("unlock").returncode == 4

    assert alice.ok("logout").stdout.strip() == "logged out"
    assert not (alice.config_dir / "config.json").exists()
    out = alice("records")
    assert out.returncode == 1
    assert out.stderr.strip() == "error: not logged in: run `login URL --username NAME` first"

    bad = alice("login", vault.base, "--username", "nobody")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: login failed: ")


def test_users_without_the_policy_or_the_access_get_not_found_or_not_permitted(vault) -> None:
    session_id = vault.record_session()
    # carol may access the record but holds no view policy; dave has the policy, no access.
    share(vault.record, UserFactory(username="carol"))
    viewer_role(UserFactory(username="dave"))
    for name in ("carol", "dave"):
        person = vault.person(name)
        person.ok("login", vault.base, "--username", name)
        person.ok("enrol")
        for args in (("sessions", vault.record.pk),
                     ("download", session_id, "--format", "zip", "-o", "x.zip"),
                     ("download", session_id, "--record", vault.record.pk)):
            result = person(*args)
            assert result.returncode == 1, (name, args, result.stderr)
            assert "not found or not permitted" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
        assert not (person.home / "x.zip").exists()


def test_grant_lets_a_user_shared_later_download(vault) -> None:
    session_id = vault.record_session()
    bob_user = UserFactory(username="bob")
    viewer_role(bob_user)
    bob = vault.person("bob")
    bob.passphrase = "bob's own passphrase"
    bob.ok("login", vault.base, "--username", "bob")
    bob.ok("enrol")
    share(vault.record, bob_user)  # after the record key was made: bob holds no share yet

    early = bob("download", session_id, "-o", "early.zip")
    assert early.returncode == 4
    assert early.stderr.startswith("key: ")
    assert "grant" in early.stderr

    assert "1 user(s) wait" in vault.alice.ok("unlock").stdout
    granted = vault.alice.ok("grant").stdout
    assert granted.strip() == "granted 1 record key share(s) to 1 user(s): bob"
    assert vault.alice.ok("grant").stdout.strip() == "nothing to grant"

    bob.ok("download", session_id, "-o", "late.zip")
    assert zipfile.ZipFile(bob.home / "late.zip").testzip() is None


def test_tampered_and_incomplete_downloads(vault, monkeypatch) -> None:
    # Small parts, so the guac fixture spans several (the sealer runs in this process).
    monkeypatch.setattr("recordings.sealing.StreamSealer",
                        functools.partial(StreamSealer, max_part_bytes=8192))
    session_id = vault.record_session()
    alice = vault.alice
    guac_parts = list(Part.objects.filter(stream__recording__session_id=session_id,
                                          stream__kind="guac").order_by("seq"))
    assert len(guac_parts) > 3
    middle, last = guac_parts[len(guac_parts) // 2], guac_parts[-1]
    path = Path(default_storage.path(middle.storage_name))
    original = path.read_bytes()

    # One byte flipped in storage: exit 2, one line, and only the valid prefix is written.
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    path.write_bytes(bytes(flipped))
    result = alice("download", session_id, "--format", "guac", "-o", "t.guac")
    assert result.returncode == 2
    assert result.stderr.startswith("tampered: ")
    assert GUACD_GUAC.read_bytes().startswith((alice.home / "t.guac").read_bytes())
    assert (alice.home / "t.guac").stat().st_size < GUACD_GUAC.stat().st_size

    assert (alice.home / "t.guac").stat().st_size > 0
    # The final part gone: exit 3, the valid prefix written.
    path.write_bytes(original)
    last.delete()
    result = alice("download", session_id, "--format", "guac", "-o", "i.guac")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("incomplete: ")
    prefix = (alice.home / "i.guac").read_bytes()
    assert GUACD_GUAC.read_bytes().startswith(prefix)
    assert (alice.home / "t.guac").stat().st_size < len(prefix) < GUACD_GUAC.stat().st_size


INTERACTIVE_TIMEOUT = 120


def interactive(cli: Cli, *args: object, answers: list[str]) -> tuple[int, bytes]:
    """Run the CLI on a pseudo-terminal, typing each answer after each prompt."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEPERPAM_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(cli.home), XDG_CONFIG_HOME=str(cli.home / "xdg"))
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal, which getpass reads
        os.chdir(cli.home)
        os.execve(sys.executable,  # noqa: S606
                  [sys.executable, "-m", "keeperpam.cli", *map(str, args)], env)
    output, since, pending = b"", b"", list(answers)
    deadline = time.monotonic() + INTERACTIVE_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the CLI did not finish within {INTERACTIVE_TIMEOUT} s: {output!r}")
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output, since = output + chunk, since + chunk
        # Answer only a new prompt (getpass flushes what is typed before it asks).
        if pending and since.rstrip(b" ").endswith(b":"):
            os.write(fd, pending.pop(0).encode() + b"\n")
            since = b""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_secrets_typed_at_prompts_are_never_echoed(live_server, transactional_db, tmp_path):
    UserFactory(username="erin")
    home = tmp_path / "home-erin"
    home.mkdir()
    erin = Cli("erin", home)
    status, output = interactive(erin, "login", live_server.url, "--username", "erin",
                                 answers=[PASSWORD])
    assert status == 0, output
    assert b"Password for erin:" in output
    assert PASSWORD.encode() not in output

    status, output = interactive(erin, "enrol", answers=[PASSPHRASE, PASSPHRASE])
    assert status == 0, output
    assert b"Vault passphrase (again):" in output
    assert PASSPHRASE.encode() not in output

    status, output = interactive(erin, "unlock", answers=["typo"])
    assert status == 4, output
    assert b"typo" not in output

    status, output = interactive(erin, "enrol", "--reset", answers=["one passphrase",
                                                                    "another passphrase"])
    assert status == 1
    assert b"the two passphrases differ" in output
