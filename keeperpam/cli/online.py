"""Online subcommands: login, logout, enrol, unlock, records, sessions, download, grant.

They talk to a keeperpam server with an API token (kept by ``login`` under
the user's config directory, see :mod:`keeperpam.cli.config`) and do every
piece of cryptography here, on the user's machine: the server only ever sees
public keys, the passphrase-protected private key and wrapped record keys.
The vault passphrase is asked for (or read from ``KEEPERPAM_PASSPHRASE``)
by each command that needs the key, and neither it nor the unwrapped key is
ever written anywhere.

Failures end with one line on stderr and the exit codes of the offline
commands: 1 error (server, network, usage of the account), 2 tampered,
3 incomplete (the valid prefix is still written), 4 key.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from keeperpam.cli import EXIT_KEY, EXIT_OK
from keeperpam.cli.client import ApiClient, ApiError, NotFoundOrNotPermitted, api_base
from keeperpam.cli.config import ConfigError, Settings, settings_clear, settings_load, settings_save
from keeperpam.cli.errors import CommandError, Handler, fail, one_line_errors
from keeperpam.crypto import keys, terminal
from keeperpam.crypto.errors import (
    IncompleteStream,
    KeyAccessError,
    KsrError,
    NoRecipient,
)
from keeperpam.crypto.parts import OpenedPart, part_parse, stream_open

__all__ = ["register"]

PASSWORD_ENV = "KEEPERPAM_PASSWORD"  # noqa: S105 - a variable name, not a secret
PASSPHRASE_ENV = "KEEPERPAM_PASSPHRASE"  # noqa: S105 - a variable name
MIN_PASSPHRASE = 8

#: ``download --format`` → the stream it reads.
FORMAT_STREAMS = {"zip": "typescript-zip", "typescript": "terminal",
                  "asciicast": "terminal", "guac": "guac"}
FORMAT_SUFFIXES = {"zip": ".zip", "typescript": "", "asciicast": ".cast", "guac": ".guac"}

#: Session states as the Session Activity page words them.
STATUS_WORDS = {"open": "recording now", "closing": "sealing", "sealed": "complete",
                "incomplete": "incomplete", "not_recorded": "not recorded", "failed": "failed"}


def _run(handler: Handler) -> Handler:
    """``one_line_errors`` that also reports the API client's and the config's errors."""
    return one_line_errors(handler, errors=(ApiError, ConfigError))


# --- settings, secrets and keys ---------------------------------------------------------


def _logged_in() -> tuple[Settings, ApiClient]:
    settings = settings_load()
    return settings, ApiClient(settings.url, settings.token)


def _secret(env: str, prompt: str) -> str:
    """A secret from the environment (scripts) or typed without echo."""
    value = os.environ.get(env)
    if value is not None:
        return value
    try:
        return getpass.getpass(prompt)
    except EOFError as exc:
        raise CommandError(f"error: no terminal to ask on; set {env}") from exc


def _passphrase(*, confirm: bool = False) -> str:
    passphrase = _secret(PASSPHRASE_ENV, "Vault passphrase: ")
    if not passphrase:
        raise CommandError("error: the vault passphrase is empty")
    if confirm and PASSPHRASE_ENV not in os.environ:
        if getpass.getpass("Vault passphrase (again): ") != passphrase:
            raise CommandError("error: the two passphrases differ; nothing was changed")
    return passphrase


def _my_key(api: ApiClient) -> dict[str, Any]:
    try:
        return api.get("me/key/")
    except NotFoundOrNotPermitted as exc:
        raise CommandError("error: no vault key enrolled yet: run `enrol` first") from exc


def _user_key_unlock(settings: Settings, api: ApiClient) -> ec.EllipticCurvePrivateKey:
    """Fetch the protected user key, ask for the passphrase and unlock it (in memory only)."""
    protected = _my_key(api)["protected_private_key"]
    passphrase = _passphrase()
    return keys.user_key_unlock(protected, passphrase=passphrase, user_id=str(settings.user_id))


def _public_key_load(encoded: str) -> ec.EllipticCurvePublicKey:
    return keys.record_public_key_load(keys.b64u_decode(encoded))


# --- output helpers ---------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                         strict=False)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in
                        zip(row, widths, strict=True)).rstrip())


def _local_time(text: str | None) -> str:
    if not text:
        return "-"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    seconds = ms // 1000
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Progress:
    """A one-line progress meter on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, *, enabled: bool, label: str = "downloading") -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.done, self.drawn_at = 0, 0.0

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self.drawn_at >= 0.1 or self.done >= self.total):
            self.drawn_at = now
            percent = 100 * self.done // self.total if self.total else 100
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {percent:3d}% "
                             f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.drawn_at:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --- login / logout -----------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    base = api_base(args.url)
    parts = urlsplit(base)
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        print("warning: plain http sends your password and token unencrypted",
              file=sys.stderr)
    password = _secret(PASSWORD_ENV, f"Password for {args.username}: ")
    api = ApiClient(base)
    try:
        answer = api.post("auth/token/", {"username": args.username, "password": password})
    except ApiError as exc:
        if exc.status == 400:
            raise CommandError(f"error: login failed: {exc}") from exc
        raise
    settings = Settings(url=base, username=args.username, user_id=int(answer["user_id"]),
                        token=answer["token"])
    path = settings_save(settings)
    print(f"logged in to {base} as {args.username} (settings in {path})")
    return EXIT_OK


def _logout(args: argparse.Namespace) -> int:
    print("logged out" if settings_clear() else "not logged in")
    return EXIT_OK


# --- enrol / unlock -------------------------------------------------------------------------


def _enrol(args: argparse.Namespace) -> int:
    settings, api = _logged_in()
    try:
        existing = api.get("me/key/")
    except NotFoundOrNotPermitted:
        existing = None
    if existing is not None and not args.reset:
        raise CommandError(
            f"error: a vault key is already enrolled (key id {existing['key_id'][:16]}…); "
            "`enrol --reset` replaces it and drops your record key shares until someone "
            "grants them again")
    passphrase = _passphrase(confirm=True)
    if len(passphrase) < MIN_PASSPHRASE:
        raise CommandError(f"error: the vault passphrase needs at least {MIN_PASSPHRASE} "
                           "characters")
    private_key = keys.record_key_generate()
    protected = keys.user_key_protect(private_key, passphrase=passphrase,
                                      user_id=str(settings.user_id))
    answer = api.put("me/key/", {
        "public_key": keys.b64u_encode(keys.public_key_der(private_key.public_key())),
        "protected_private_key": protected,
        "reset": existing is not None,
    })
    print(f"enrolled vault key {answer['key_id']}")
    print("Keep the passphrase safe: the server cannot recover it, and without it your "
          "recordings cannot be opened.")
    return EXIT_OK


def _unlock(args: argparse.Namespace) -> int:
    settings, api = _logged_in()
    private_key = _user_key_unlock(settings, api)
    print(f"unlocked vault key {keys.record_key_id(private_key)} (it stays in memory only)")
    pending = api.get("grants/pending/", params={"page_size": 1})
    count = pending.get("count", 0) if isinstance(pending, dict) else len(pending)
    if count:
        print(f"{count} user(s) wait for record keys you hold: run `grant`")
    return EXIT_OK


# --- records / sessions ---------------------------------------------------------------------


def _records(args: argparse.Namespace) -> int:
    _, api = _logged_in()
    params = {key: value for key, value in
              (("search", args.search), ("record_type", args.type)) if value}
    rows = [[str(r["id"]), r["name"], r["record_type"], r["protocol"],
             r.get("folder_name") or "-",
             "yes" if (r.get("permissions") or {}).get("can_view_recordings") else "no"]
            for r in api.paginate("records/", params=params)]
    if not rows:
        print("no records", file=sys.stderr)
        return EXIT_OK
    _table(["ID", "NAME", "TYPE", "PROTOCOL", "FOLDER", "RECORDINGS"], rows)
    return EXIT_OK


def _record_id(api: ApiClient, text: str) -> int:
    """A record id given as a number, or as an exact (unique) record name."""
    if text.isdigit():
        return int(text)
    matches = [r for r in api.paginate("records/", params={"search": text})
               if r["name"] == text]
    if len(matches) != 1:
        raise CommandError(f"error: {'no' if not matches else 'more than one'} record named "
                           f"{text!r}; give its id (see `records`)")
    return int(matches[0]["id"])


def _sessions(args: argparse.Namespace) -> int:
    _, api = _logged_in()
    record = _record_id(api, args.record)
    rows = []
    for session in api.paginate(f"records/{record}/sessions/"):
        streams = ",".join(s["stream"] for s in session.get("streams", []))
        rows.append([session["id"], session.get("launched_by") or "-",
                     _local_time(session.get("started_at")),
                     _duration(session.get("duration_ms")), session.get("protocol", "-"),
                     STATUS_WORDS.get(session.get("status"), session.get("status", "-")),
                     streams or "-"])
    if not rows:
        print("no sessions for this record", file=sys.stderr)
        return EXIT_OK
    _table(["SESSION", "USER", "START", "DURATION", "PROTOCOL", "STATUS", "STREAMS"], rows)
    return EXIT_OK


def _session_find(api: ApiClient, session_id: str, record: int | None) -> tuple[dict, int]:
    """The session ``session_id`` (``GET sessions/{id}/``) and its record id.

    ``record``, when given, must be the session's record: a mismatch is an error
    rather than a silent download of another record's session.
    """
    session = api.get(f"sessions/{session_id}/")
    if record is not None and int(session["record"]) != record:
        raise CommandError(f"error: session {session_id} belongs to record {session['record']}, "
                           f"not {record}")
    return session, int(session["record"])


# --- download -----------------------------------------------------------------------------


def _record_key(api: ApiClient, settings: Settings, user_key: ec.EllipticCurvePrivateKey,
                record: int, first_part: bytes) -> ec.EllipticCurvePrivateKey:
    """Unwrap the record key the recording's parts are sealed to, from the caller's shares."""
    try:
        recipients = {r.kid for r in part_parse(first_part).header.recipients}
    except KsrError:
        recipients = set()  # a malformed part: stream_open will say so precisely
    shares = list(api.paginate(f"records/{record}/key-shares/"))
    for share in shares:
        if not recipients or share["record_key_id"] in recipients:
            return keys.record_key_share_unwrap(
                share["share"], user_private_key=user_key, user_id=str(settings.user_id),
                record_kid=share["record_key_id"])
    raise NoRecipient("you hold no share of the record key this recording is sealed to; "
                      "ask someone who can view it to run `grant`")


def _signers(api: ApiClient) -> dict[str, Any]:
    # The id is recomputed from the key, never taken from the server's label.
    signers = {}
    for row in api.paginate("signers/"):
        key = keys.signer_public_key_load(keys.b64u_decode(row["public_key"]))
        signers[keys.signer_key_id(key)] = key
    return signers


def _audit(api: ApiClient, session_id: str, fmt: str, stream: str) -> None:
    """Record the download in the audit trail (where the server offers the endpoint)."""
    try:
        api.post(f"sessions/{session_id}/audit/",
                 {"action": "download", "format": fmt, "stream": stream},
                 ok=(200, 201, 202, 204))
    except ApiError as exc:
        if exc.status not in (404, 405):
            print(f"warning: the download could not be audited: {exc}", file=sys.stderr)


def _default_name(record_name: str, session: dict) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", record_name).strip("-") or "session"
    started = datetime.fromisoformat(session["started_at"].replace("Z", "+00:00"))
    return f"{stem}-{started.astimezone(UTC):%Y%m%d-%H%M%S}"


@contextlib.contextmanager
def _output(path: str, mode: str, *, force: bool) -> Iterator[BinaryIO | TextIO]:
    if path == "-":
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    if not force and Path(path).exists():
        raise CommandError(f"error: {path} exists; use --force to overwrite it")
    with open(path, mode) as handle:
        yield handle


def _download(args: argparse.Namespace) -> int:
    settings, api = _logged_in()
    session_id = str(args.session)
    stream = FORMAT_STREAMS[args.format]
    session, record = _session_find(api, session_id, args.record)
    if not session.get("recording"):
        raise CommandError("error: this session was not recorded")
    have = [s["stream"] for s in session.get("streams", [])]
    if stream not in have:
        raise CommandError(f"error: this session has no {stream} stream for --format "
                           f"{args.format} (it has: {', '.join(have) or 'none'})")

    output = args.output or _default_name(_record_name(api, record), session) + \
        FORMAT_SUFFIXES[args.format]
    _refuse_overwrite(args.format, output, force=args.force)

    user_key = _user_key_unlock(settings, api)
    signers = _signers(api)
    parts = list(api.paginate(f"sessions/{session_id}/streams/{stream}/parts/",
                              params={"page_size": 200}))
    if not parts:
        raise IncompleteStream(f"incomplete: stream {stream} has no parts yet")
    _audit(api, session_id, args.format, stream)

    progress = _Progress(sum(p["size"] for p in parts),
                         enabled=args.progress or sys.stderr.isatty())
    first = api.download(parts[0]["url"], on_bytes=progress.add)
    record_key = _record_key(api, settings, user_key, record, first)

    def fetched() -> Iterator[bytes]:
        yield first
        for part in parts[1:]:
            yield api.download(part["url"], on_bytes=progress.add)

    opened = stream_open(fetched(), record_private_key=record_key, signers=signers,
                         recording=session["recording"], stream=stream)
    try:
        written = _write(args.format, opened, output, session, force=args.force)
    finally:
        progress.close()
    print(f"wrote {written}", file=sys.stderr)
    return EXIT_OK


def _refuse_overwrite(fmt: str, output: str, *, force: bool) -> None:
    """Fail before anything is fetched (or audited) if the output files exist."""
    if output == "-" or force:
        return
    base = output.removesuffix(".tys")
    for path in ([f"{base}.tys", f"{base}.tm"] if fmt == "typescript" else [output]):
        if Path(path).exists():
            raise CommandError(f"error: {path} exists; use --force to overwrite it")


def _record_name(api: ApiClient, record: int) -> str:
    return str(api.get(f"records/{record}/").get("name", f"record-{record}"))


def _write(fmt: str, opened: Iterator[OpenedPart], output: str, session: dict, *,
           force: bool) -> str:
    """Write the decrypted stream in ``fmt``; return what was written (for the message)."""
    if fmt in ("zip", "guac"):
        with _output(output, "wb", force=force) as out:
            # Reading from seq 0, keyframes repeat what came before: write the bodies.
            for part in opened:
                out.write(part.body)  # type: ignore[arg-type]
        return output
    if fmt == "asciicast":
        started = datetime.fromisoformat(session["started_at"].replace("Z", "+00:00"))
        with _output(output, "w", force=force) as out:
            terminal.records_to_asciicast(terminal.stream_records(opened), out,  # type: ignore[arg-type]
                                          timestamp=int(started.timestamp()))
        return output
    if output == "-":
        raise CommandError("error: --format typescript needs a file name (writes NAME.tys "
                           "and NAME.tm)")
    base = output.removesuffix(".tys")
    with _output(f"{base}.tys", "wb", force=force) as tys, \
            _output(f"{base}.tm", "w", force=force) as tm:
        terminal.records_to_typescript(
            terminal.stream_records(opened), tys, tm,  # type: ignore[arg-type]
            header_line=f"Script started [keeperpam session {session['id']}]")
    return f"{base}.tys and {base}.tm (replay: scriptreplay --timing {base}.tm {base}.tys)"


# --- grant ---------------------------------------------------------------------------------


def _grant(args: argparse.Namespace) -> int:
    settings, api = _logged_in()
    pending = list(api.paginate("grants/pending/"))
    if not pending:
        print("nothing to grant")
        return EXIT_OK
    user_key = _user_key_unlock(settings, api)
    # One unwrap per record key, however many users wait for it.
    record_keys: dict[str, ec.EllipticCurvePrivateKey | None] = {}
    shares, failed = [], []
    for grant in pending:
        kid = grant["record_key_id"]
        if kid not in record_keys:
            record_keys[kid] = _held_record_key(api, settings, user_key, grant["record"], kid)
        record_key = record_keys[kid]
        if record_key is None:
            failed.append(grant)
            continue
        shares.append({"record_key_id": kid, "user": grant["user"],
                       "share": keys.record_key_share_wrap(
                           record_private_key=record_key,
                           user_public_key=_public_key_load(grant["user_public_key"]),
                           user_id=str(grant["user"]))})
    granted = 0
    for start in range(0, len(shares), 1000):
        answer = api.post("grants/", {"shares": shares[start:start + 1000]})
        granted += sum(1 for r in answer.get("results", []) if r.get("status") == "granted")
    users = sorted({g["username"] for g in pending if g not in failed})
    print(f"granted {granted} record key share(s) to {len(users)} user(s): "
          f"{', '.join(users) or '-'}")
    if failed:
        names = sorted({g["record_name"] for g in failed})
        return fail(f"key: your share of some record keys does not open: "
                     f"{', '.join(names)}", EXIT_KEY)
    return EXIT_OK


def _held_record_key(api: ApiClient, settings: Settings, user_key: ec.EllipticCurvePrivateKey,
                     record: int, kid: str) -> ec.EllipticCurvePrivateKey | None:
    for share in api.paginate(f"records/{record}/key-shares/"):
        if share["record_key_id"] == kid:
            try:
                return keys.record_key_share_unwrap(
                    share["share"], user_private_key=user_key,
                    user_id=str(settings.user_id), record_kid=kid)
            except KeyAccessError:
                return None
    return None


# --- registration ------------------------------------------------------------------------


def _session_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("a session id looks like "
                                         "0f8e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the online subcommands to the CLI."""
    login = subparsers.add_parser(
        "login", help="log in to a keeperpam server and keep an API token",
        description=f"Get an API token. The password is asked for, or read from "
                    f"${PASSWORD_ENV}. The URL, user and token are kept (mode 0600) under "
                    "$XDG_CONFIG_HOME/keeperpam/ (default ~/.config/keeperpam/).",
    )
    login.add_argument("url", metavar="URL", help="the server, e.g. https://vault.example.com")
    login.add_argument("--username", "-u", required=True, metavar="NAME")
    login.set_defaults(handler=_run(_login))

    logout = subparsers.add_parser("logout", help="forget the server, user and token")
    logout.set_defaults(handler=_run(_logout))

    enrol = subparsers.add_parser(
        "enrol", help="create your vault key, protected by a passphrase",
        description=f"Generate a key pair here, protect the private key with a vault "
                    f"passphrase (asked twice, or ${PASSPHRASE_ENV}) and upload it. The "
                    "server cannot recover the passphrase.",
    )
    enrol.add_argument("--reset", action="store_true",
                       help="replace an enrolled key (its record key shares are dropped)")
    enrol.set_defaults(handler=_run(_enrol))

    unlock = subparsers.add_parser(
        "unlock", help="check that the vault passphrase opens your key",
        description="The key is never stored unlocked: commands that need it ask again "
                    f"(or read ${PASSPHRASE_ENV}).",
    )
    unlock.set_defaults(handler=_run(_unlock))

    records = subparsers.add_parser("records", help="list the records you can access")
    records.add_argument("--search", metavar="Q", help="search names, hosts and notes")
    records.add_argument("--type", metavar="T", help="only this record type, e.g. pamMachine")
    records.set_defaults(handler=_run(_records))

    sessions = subparsers.add_parser("sessions", help="a record's Session Activity")
    sessions.add_argument("record", metavar="RECORD", help="record id (or exact name)")
    sessions.set_defaults(handler=_run(_sessions))

    download = subparsers.add_parser(
        "download", help="download and decrypt a session recording here",
        description="Fetch a session's sealed parts, verify and decrypt them locally. "
                    "zip: the typescript zip (.tys + .tm); typescript: NAME.tys + NAME.tm; "
                    "asciicast: asciicast v2; guac: the Guacamole protocol dump. An "
                    "incomplete recording is written up to its last valid part (exit 3).",
    )
    download.add_argument("session", type=_session_uuid, metavar="SESSION")
    download.add_argument("--format", choices=tuple(FORMAT_STREAMS), default="zip")
    download.add_argument("-o", "--output", metavar="FILE",
                          help="output file (default <record>-<start>.<ext>; - for stdout)")
    download.add_argument("--record", type=int, metavar="ID",
                          help="the session's record (saves looking it up)")
    download.add_argument("--progress", action="store_true",
                          help="show progress even when stderr is not a terminal")
    download.add_argument("--force", action="store_true", help="overwrite existing files")
    download.set_defaults(handler=_run(_download))

    grant = subparsers.add_parser(
        "grant", help="share record keys you hold with users waiting for them",
        description="Re-wrap, here, the record keys you hold for users who were given "
                    "access after the recordings were sealed.",
    )
    grant.set_defaults(handler=_run(_grant))

