"""Every write of the recordings app.

Sealer signing keys: each worker signs sealed parts with an Ed25519 key kept
in a file in the gateway zone (``settings.KEEPERPAM_SIGNER_KEY_FILE``); only
the public half is registered here, so readers can trust it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from keeperpam.crypto import keys as crypto_keys
from vault.choices import AuditAction
from vault.services import audit_event_write

from .models import SignerKey


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
