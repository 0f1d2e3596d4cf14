"""Every write of the recordings app.

Sealer signing keys: each worker signs sealed parts with an Ed25519 key kept
in a file in the gateway zone (``settings.KEEPERPAM_SIGNER_KEY_FILE``); only
the public half is registered here, so readers can trust it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from keeperpam.crypto import keys as crypto_keys
from vault.choices import AuditAction
from vault.services import audit_event_write

from . import staging
from .authentication import token_hash
from .choices import STREAM_OF_FORMAT, SessionStatus, StreamKind, UploadFormat
from .models import (
    Gateway,
    GatewayCredential,
    Recording,
    Session,
    SignerKey,
    Stream,
    Upload,
)

logger = logging.getLogger(__name__)


class SignerKeyRetired(Exception):
    """The worker's key file holds a signer key that was retired: it must not sign again."""


# ------------------------------------------------------------------ signer keys


def _key_file() -> Path:
    return Path(settings.KEEPERPAM_SIGNER_KEY_FILE)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_key_file(path: Path, key: ed25519.Ed25519PrivateKey, *, replace: bool) -> None:
    """Write ``key`` as PKCS#8 PEM with mode 0600 (atomically replacing when asked).

    Without ``replace`` the file is created exclusively, so two workers
    starting at once cannot both write one (the loser gets FileExistsError).
    """
    _private_dir(path.parent)
    pem = crypto_keys.private_key_pem(key)
    if replace:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    else:
        fd, tmp_name = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), None
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    if tmp_name is not None:
        os.replace(tmp_name, path)


def _load_or_create_key_file(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        return crypto_keys.signer_private_key_load(path.read_bytes())
    except FileNotFoundError:
        pass
    try:
        _write_key_file(path, crypto_keys.signer_key_generate(), replace=False)
    except FileExistsError:
        pass  # another worker won the race; use its key
    return crypto_keys.signer_private_key_load(path.read_bytes())


def _public_raw(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _register(key: ed25519.Ed25519PrivateKey) -> tuple[SignerKey, bool]:
    signer, created = SignerKey.objects.get_or_create(
        key_id=crypto_keys.signer_key_id(key),
        defaults={"public_key": crypto_keys.b64u_encode(_public_raw(key))},
    )
    if created:
        audit_event_write(actor=None, action=AuditAction.CREATE, instance=signer,
                          after={"key_id": signer.key_id, "public_key": signer.public_key})
    return signer, created


@transaction.atomic
def signer_key_ensure() -> tuple[ed25519.Ed25519PrivateKey, SignerKey]:
    """The worker's signing key and its registered public half, made on first use.

    Loads the key file (``settings.KEEPERPAM_SIGNER_KEY_FILE``), creating it
    with mode 0600 in a 0700 directory if missing, and registers the public
    key idempotently. Raises :class:`SignerKeyRetired` if the file holds a key
    that was retired (a stale copy of a rotated key).
    """
    key = _load_or_create_key_file(_key_file())
    signer, _ = _register(key)
    if signer.retired_at is not None:
        raise SignerKeyRetired(
            f"The signer key in {_key_file()} ({signer.key_id}) was retired on "
            f"{signer.retired_at:%Y-%m-%d %H:%M}; run `manage.py signer_key --rotate`."
        )
    return key, signer


@transaction.atomic
def signer_key_rotate() -> tuple[ed25519.Ed25519PrivateKey, SignerKey]:
    """Replace the worker's signing key with a new one; retire (but keep) the old public key.

    The old row stays trusted for verifying parts it already signed.
    """
    path = _key_file()
    old_id = None
    if path.exists():
        old_id = crypto_keys.signer_key_id(crypto_keys.signer_private_key_load(path.read_bytes()))
    key = crypto_keys.signer_key_generate()
    signer, _ = _register(key)
    if old_id is not None:
        SignerKey.objects.filter(key_id=old_id, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
    # Write the file last: if the database work fails, the worker keeps its old key.
    _write_key_file(path, key, replace=True)
    audit_event_write(actor=None, action=AuditAction.UPDATE, instance=signer,
                      object_repr="signer key rotated",
                      before={"key_id": old_id}, after={"key_id": signer.key_id})
    return key, signer


# ------------------------------------------------------------------ gateways


def gateway_create(*, name: str, configurations=(), description: str = "",
                   acting_user) -> Gateway:
    """Register a gateway bound to ``configurations`` (audited)."""
    gateway = Gateway(name=name, description=description)
    gateway.full_clean()
    gateway.save()
    gateway.configurations.set(configurations)
    audit_event_write(actor=acting_user, action=AuditAction.CREATE, instance=gateway,
                      after={"name": name,
                             "configurations": sorted(c.pk for c in configurations)})
    return gateway


@transaction.atomic
def gateway_credential_issue(*, gateway: Gateway, label: str = "",
                             acting_user) -> tuple[GatewayCredential, str]:
    """Make a new API credential for ``gateway``; return it and the token (shown only now)."""
    prefix = secrets.token_hex(6)
    token = f"kpg_{prefix}_{secrets.token_urlsafe(32)}"
    credential = GatewayCredential.objects.create(
        gateway=gateway, prefix=prefix, token_hash=token_hash(token), label=label
    )
    audit_event_write(actor=acting_user, action=AuditAction.CREATE, instance=credential,
                      after={"gateway": gateway.pk, "prefix": prefix, "label": label})
    return credential, token


@transaction.atomic
def gateway_credential_revoke(*, credential: GatewayCredential, acting_user) -> None:
    """Revoke a credential: the gateway can no longer authenticate with it."""
    if credential.revoked_at is not None:
        return
    credential.revoked_at = timezone.now()
    credential.save(update_fields=["revoked_at"])
    audit_event_write(actor=acting_user, action=AuditAction.REVOKE, instance=credential,
                      after={"revoked_at": credential.revoked_at.isoformat()})


# ------------------------------------------------------------------ sessions


def _enqueue(task, *args) -> None:
    """Send a sealing task after commit; a failure must not fail the gateway's request.

    The bytes are already committed: a task that cannot be sent or (eagerly)
    fails is retried by the next PATCH, the close, or the idle reaper.
    """
    try:
        task.delay(*args)
    except Exception:
        logger.exception("could not run %s for %s; it will be retried", task.name, args)


class IngestError(Exception):
    """A gateway request that cannot be honoured; ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UploadOffsetMismatch(IngestError):
    """A PATCH at an offset other than the upload's current one (tus: 409)."""

    status = 409

    def __init__(self, current: int) -> None:
        self.current = current
        super().__init__(f"Upload-Offset does not match the upload's offset ({current}).")


#: Upload formats each stream takes.
STREAM_FORMATS = {
    StreamKind.GUAC: [UploadFormat.GUAC],
    StreamKind.TERMINAL: [UploadFormat.TYPESCRIPT, UploadFormat.TIMING, UploadFormat.ASCIICAST],
}


@transaction.atomic
def session_open(*, gateway: Gateway, record, protocol: str, launched_by: str,
                 started_at=None, client_address: str | None = None) -> Session:
    """Open a session of ``record`` for ``gateway``; decide what is recorded.

    The record must belong to one of the gateway's configurations (otherwise
    :class:`IngestError` 404: the gateway must not learn it exists) and the
    protocol must be the record's. Recording follows
    ``record.effective_recording()``; when something is recorded the record
    key is fetched (or made) now, so a record nobody could open fails closed
    before any byte is uploaded: the session is kept, marked *failed* with the
    reason, and nothing is recorded.
    """
    from vault.key_services import NoKeyRecipients, record_key_for_sealing

    if not gateway.configurations.filter(pk=record.configuration_id).exists():
        raise IngestError("No such record.", status=404)
    if protocol != record.protocol:
        raise IngestError(f"The record's protocol is {record.protocol!r}, not {protocol!r}.")
    now = timezone.now()
    effective = record.effective_recording()
    user = get_user_model().objects.filter(username=launched_by).first()
    session = Session.objects.create(
        gateway=gateway, record=record, protocol=protocol, launched_by=launched_by,
        user=user, client_address=client_address or None, started_at=started_at or now,
        last_activity_at=now, graphical=effective.graphical, text=effective.text,
        status=SessionStatus.OPEN if (effective.graphical or effective.text)
        else SessionStatus.NOT_RECORDED,
    )
    if session.status == SessionStatus.OPEN:
        try:
            with transaction.atomic():
                record_key = record_key_for_sealing(record=record)
        except NoKeyRecipients as exc:
            session.status, session.error = SessionStatus.FAILED, str(exc)
            session.graphical = session.text = False
            session.save(update_fields=["status", "error", "graphical", "text"])
        else:
            _, signer = signer_key_ensure()
            recording = Recording.objects.create(session=session, record_key=record_key,
                                                 signer=signer)
            kinds = ([StreamKind.GUAC] if effective.graphical else []) + (
                [StreamKind.TERMINAL] if effective.text else [])
            for kind in kinds:
                Stream.objects.create(recording=recording, kind=kind)
    audit_event_write(actor=None, action=AuditAction.CREATE, instance=session,
                      after={"gateway": gateway.name, "record": record.pk,
                             "protocol": protocol, "launched_by": launched_by,
                             "status": session.status})
    return session


def session_streams(session: Session) -> list[dict]:
    """What the gateway is to upload: each stream with the formats it takes."""
    if not hasattr(session, "recording"):
        return []
    return [{"stream": s.kind, "formats": [str(f) for f in STREAM_FORMATS[s.kind]]}
            for s in session.recording.streams.order_by("kind")
            if s.kind in STREAM_FORMATS]


@transaction.atomic
def session_close(*, session: Session, ended_at=None, exit_status: int | None = None) -> Session:
    """Close a session; the sealer then writes final parts, the zip, and purges staging.

    Idempotent: closing a closed session changes nothing.
    """
    session = Session.objects.select_for_update().get(pk=session.pk)
    if session.ended_at is not None:
        return session
    session.ended_at = ended_at or timezone.now()
    session.exit_status = exit_status
    session.last_activity_at = timezone.now()
    fields = ["ended_at", "exit_status", "last_activity_at"]
    if session.status == SessionStatus.OPEN:
        session.status = SessionStatus.CLOSING
        fields.append("status")
        from .tasks import session_finish

        session_id = str(session.pk)
        transaction.on_commit(lambda: _enqueue(session_finish, session_id))
    session.save(update_fields=fields)
    audit_event_write(actor=None, action=AuditAction.UPDATE, instance=session,
                      object_repr="session closed",
                      after={"ended_at": session.ended_at.isoformat(),
                             "exit_status": exit_status})
    return session


# ------------------------------------------------------------------ uploads (tus)


def upload_create(*, gateway: Gateway, session_id: str, format: str,
                  length: int | None) -> Upload:
    """Create a tus upload of ``format`` for a session of ``gateway`` (404 for others')."""
    try:
        session = Session.objects.select_related("recording").get(pk=session_id,
                                                                   gateway=gateway)
    except (Session.DoesNotExist, ValueError, DjangoValidationError) as exc:
        raise IngestError("Unknown session.", status=404) from exc
    if format not in UploadFormat.values:
        raise IngestError(f"Unknown format {format!r}; use one of "
                          f"{', '.join(UploadFormat.values)}.")
    if session.status != SessionStatus.OPEN:
        raise IngestError(f"The session is {session.get_status_display().lower()}: "
                          "it takes no uploads.", status=409)
    kind = STREAM_OF_FORMAT[UploadFormat(format)]
    stream = Stream.objects.filter(recording__session=session, kind=kind).first()
    if stream is None:
        raise IngestError(f"This session does not record the {kind} stream.")
    existing = set(session.uploads.values_list("format", flat=True))
    if format in existing:
        raise IngestError(f"The session already has a {format} upload.", status=409)
    if format == UploadFormat.ASCIICAST and existing & {"typescript", "timing"} or (
        format in ("typescript", "timing") and "asciicast" in existing
    ):
        raise IngestError("A terminal stream takes asciicast or typescript+timing, not both.")
    try:
        with transaction.atomic():
            upload = Upload.objects.create(session=session, stream=stream, format=format,
                                           length=length)
    except IntegrityError as exc:
        raise IngestError(f"The session already has a {format} upload.", status=409) from exc
    return upload


def upload_append(*, upload_id, gateway: Gateway, offset: int, body, body_limit: int,
                  length: int | None = None) -> Upload:
    """Append a PATCH body at ``offset`` (tus core); return the upload with its new offset.

    The body is streamed to a staged chunk and fsynced before the offset
    advances (in one transaction with the row locked), so an accepted byte is
    never lost and a retried PATCH at an old offset changes nothing (409).
    """
    upload = upload_for_gateway(upload_id=upload_id, gateway=gateway)
    if upload.offset != offset:
        raise UploadOffsetMismatch(upload.offset)
    if length is not None:
        if upload.length is not None and upload.length != length:
            raise IngestError("Upload-Length cannot change once set.")
        if length < upload.offset:
            raise IngestError("Upload-Length is smaller than the bytes already received.")
    if upload.session.status != SessionStatus.OPEN:
        raise IngestError("The session is closed: it takes no more bytes.", status=409)
    final_length = length if length is not None else upload.length
    limit = body_limit if final_length is None else min(body_limit, final_length - offset)
    written = staging.chunk_write(upload, offset, body, limit=limit + 1 if final_length is None
                                  else limit)
    if final_length is None and written > body_limit:
        raise IngestError("The request body exceeds the per-request limit.", status=413)
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.offset != offset:
            # A concurrent PATCH won: ours is a duplicate (its chunk equals the winner's).
            raise UploadOffsetMismatch(locked.offset)
        locked.offset = offset + written
        if length is not None:
            locked.length = length
        locked.save(update_fields=["offset", "length", "updated_at"])
        Session.objects.filter(pk=locked.session_id).update(last_activity_at=timezone.now())
        from .tasks import stream_seal_pending

        upload_key = str(locked.pk)
        transaction.on_commit(lambda: _enqueue(stream_seal_pending, upload_key))
    return locked


def upload_for_gateway(*, upload_id, gateway: Gateway) -> Upload:
    """The upload ``upload_id`` of one of ``gateway``'s sessions, or IngestError 404."""
    try:
        return Upload.objects.select_related("session").get(pk=upload_id,
                                                            session__gateway=gateway)
    except (Upload.DoesNotExist, ValueError, DjangoValidationError) as exc:
        raise IngestError("Unknown upload.", status=404) from exc


def sessions_abandon_idle(now=None) -> list[str]:
    """Mark open sessions silent for ``KEEPERPAM_SESSION_IDLE_TIMEOUT`` seconds as closing.

    Their staged bytes are then sealed and the session ends *incomplete*
    (see :mod:`recordings.sealing`); a session can never stay unsealed forever.
    """
    from .tasks import session_finish

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.KEEPERPAM_SESSION_IDLE_TIMEOUT)
    ids = []
    with transaction.atomic():
        for session in Session.objects.select_for_update().filter(
            status=SessionStatus.OPEN, last_activity_at__lt=cutoff
        ):
            session.status = SessionStatus.CLOSING
            session.error = "The gateway went silent: the recording was sealed as incomplete."
            session.save(update_fields=["status", "error"])
            audit_event_write(actor=None, action=AuditAction.UPDATE, instance=session,
                              object_repr="session abandoned", after={"status": "incomplete"})
            ids.append(str(session.pk))
        for session_id in ids:
            transaction.on_commit(
                lambda session_id=session_id: _enqueue(session_finish, session_id, True))
        # Closed sessions still not finished after the timeout lost their task
        # (a broker outage, a worker killed before the redelivery): send it again.
        stuck = [str(pk) for pk in Session.objects.filter(
            status=SessionStatus.CLOSING, last_activity_at__lt=cutoff,
        ).exclude(pk__in=ids).values_list("pk", flat=True)]
        for session_id in stuck:
            transaction.on_commit(
                lambda session_id=session_id: _enqueue(session_finish, session_id))
    return ids


def upload_terminate(*, upload_id, gateway: Gateway) -> None:
    """tus termination: allowed only before any byte is sealed; drops the staged bytes."""
    upload = upload_for_gateway(upload_id=upload_id, gateway=gateway)
    if upload.consumed > 0 or upload.session.status != SessionStatus.OPEN:
        raise IngestError("Bytes of this upload are already sealed: it cannot be terminated.",
                          status=409)
    import shutil

    shutil.rmtree(staging.upload_dir(upload), ignore_errors=True)
    upload.delete()


# ------------------------------------------------------------------ importing files


#: Bytes :func:`session_import` sends per append, like one gateway PATCH.
IMPORT_CHUNK = 8 << 20


def session_import(*, gateway: Gateway, record, files: Mapping[str, Path | str],
                   launched_by: str, started_at=None, ended_at=None,
                   client_address: str | None = None) -> Session:
    """Record existing files as one session of ``record``, exactly as ``gateway`` would.

    ``files`` maps upload formats (``guac``, ``typescript`` + ``timing``,
    ``asciicast``) to paths. The session is opened, each file is uploaded in
    :data:`IMPORT_CHUNK` appends and the session is closed, all through the
    services a gateway's requests use, so the sealer treats the result like a
    live session (sealed at once with eager Celery, else by a worker).
    Raises :class:`IngestError` for unusable input, or when the session was
    opened but records nothing (it is kept, with its status and reason, as
    for a gateway). Returns the session as it is after the close.
    """
    paths = {fmt: Path(path) for fmt, path in files.items()}
    if not paths:
        raise IngestError("Give at least one file: guac, typescript and timing, or asciicast.")
    unknown = sorted(set(paths) - set(UploadFormat.values))
    if unknown:
        raise IngestError(f"Unknown format(s) {', '.join(unknown)}; use "
                          f"{', '.join(UploadFormat.values)}.")
    if (UploadFormat.TYPESCRIPT in paths) != (UploadFormat.TIMING in paths):
        raise IngestError("A typescript and its timing file go together.")
    for path in paths.values():
        if not path.is_file():
            raise IngestError(f"{path} is not a file.")
    session = session_open(gateway=gateway, record=record, protocol=record.protocol,
                           launched_by=launched_by, started_at=started_at,
                           client_address=client_address)
    if session.status != SessionStatus.OPEN:
        raise IngestError(f"Nothing to record: session {session.pk} is "
                          f"{session.get_status_display().lower()}. {session.error}".strip())
    for fmt, path in paths.items():
        upload = upload_create(gateway=gateway, session_id=str(session.pk), format=fmt,
                               length=path.stat().st_size)
        with open(path, "rb") as source:
            while upload.offset < upload.length:
                upload = upload_append(upload_id=upload.pk, gateway=gateway,
                                       offset=upload.offset, body=source,
                                       body_limit=IMPORT_CHUNK)
    session_close(session=session, ended_at=ended_at)
    return Session.objects.get(pk=session.pk)


# ------------------------------------------------------------------ demo


DEMO_GATEWAY_NAME = "Demo gateway"


def gateway_demo_ensure(*, configurations, acting_user) -> tuple[Gateway, str, int]:
    """The demo gateway bound to ``configurations`` with a printable credential.

    Demo only: the token is derived from ``SECRET_KEY`` so every ``demo_setup``
    run prints the same working token without keeping it (only its hash is
    stored). Returns the gateway, the token and how many rows were written.
    """
    digest = hmac.new(settings.SECRET_KEY.encode(), b"keeperpam demo gateway",
                      hashlib.sha256).digest()
    prefix = "demo" + digest[:4].hex()
    token = f"kpg_{prefix}_{crypto_keys.b64u_encode(digest)}"
    writes = 0
    gateway = Gateway.objects.filter(name=DEMO_GATEWAY_NAME).first()
    if gateway is None:
        gateway = gateway_create(name=DEMO_GATEWAY_NAME, configurations=configurations,
                                 description="Made by demo_setup.", acting_user=acting_user)
        writes += 1
    elif set(gateway.configurations.all()) != set(configurations):
        gateway.configurations.set(configurations)
        writes += 1
    credential = GatewayCredential.objects.filter(prefix=prefix).first()
    if credential is None or credential.token_hash != token_hash(token) or (
            credential.revoked_at is not None or credential.gateway_id != gateway.pk):
        GatewayCredential.objects.filter(prefix=prefix).delete()
        credential = GatewayCredential.objects.create(gateway=gateway, prefix=prefix,
                                                      token_hash=token_hash(token),
                                                      label="demo_setup")
        audit_event_write(actor=acting_user, action=AuditAction.CREATE, instance=credential,
                          after={"gateway": gateway.pk, "prefix": prefix})
        writes += 1
    return gateway, token, writes
