"""Sealer signing keys: the worker's key file, registration, rotation, the signers API."""

import hashlib
import shutil
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from keeperpam.crypto import keys as crypto_keys
from recordings import services
from recordings.models import SignerKey
from tests.factories import UserFactory
from tests.keyring import fast_passwords  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

SIGNERS = "/api/v1/signers/"


@pytest.fixture
def key_file(settings, tmp_path):
    path = tmp_path / "keys" / "signer.pem"
    settings.KEEPERPAM_SIGNER_KEY_FILE = path
    return path


def test_ensure_creates_a_private_file_and_registers_the_public_half(key_file):
    private_key, signer = services.signer_key_ensure()

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    raw = crypto_keys.b64u_decode(signer.public_key)
    assert len(raw) == 32
    assert signer.key_id == hashlib.sha256(raw).hexdigest()
    assert signer.key_id == crypto_keys.signer_key_id(private_key)
    assert signer.retired_at is None
    # The registered public key verifies what the private key signs.
    crypto_keys.signer_public_key_load(raw).verify(private_key.sign(b"part"), b"part")

    again_key, again = services.signer_key_ensure()
    assert again.pk == signer.pk
    assert crypto_keys.signer_key_id(again_key) == signer.key_id
    assert SignerKey.objects.count() == 1


def test_ensure_registers_an_existing_key_file(key_file):
    key = crypto_keys.signer_key_generate()
    key_file.parent.mkdir(mode=0o700)
    key_file.write_bytes(crypto_keys.private_key_pem(key))
    _, signer = services.signer_key_ensure()
    assert signer.key_id == crypto_keys.signer_key_id(key)


def test_rotate_keeps_the_old_key_retired_and_trusted(key_file, tmp_path):
    _, old = services.signer_key_ensure()
    shutil.copy(key_file, tmp_path / "old.pem")
    new_key, new = services.signer_key_rotate()

    old.refresh_from_db()
    assert old.retired_at is not None
    assert new.retired_at is None
    assert new.key_id != old.key_id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    _, current = services.signer_key_ensure()
    assert current.pk == new.pk
    assert crypto_keys.signer_key_id(new_key) == new.key_id

    # A stale copy of the rotated key must not sign again.
    shutil.copy(tmp_path / "old.pem", key_file)
    with pytest.raises(services.SignerKeyRetired, match="--rotate"):
        services.signer_key_ensure()


def test_signers_api_lists_every_key_with_id_and_public_key(api_client, key_file):
    _, old = services.signer_key_ensure()
    _, new = services.signer_key_rotate()
    assert api_client.get(SIGNERS).status_code in (401, 403)

    api_client.force_authenticate(UserFactory())
    response = api_client.get(SIGNERS)
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert set(rows) == {old.key_id, new.key_id}
    assert set(rows[old.key_id]) == {"id", "public_key", "created_at", "retired_at"}
    assert rows[old.key_id]["retired_at"] is not None
    assert rows[new.key_id]["retired_at"] is None
    for key_id, row in rows.items():
        assert hashlib.sha256(crypto_keys.b64u_decode(row["public_key"])).hexdigest() == key_id


def test_signer_key_command(key_file):
    out = StringIO()
    call_command("signer_key", "--show", stdout=out)
    first = SignerKey.objects.get()
    assert first.key_id in out.getvalue()
    assert first.public_key in out.getvalue()

    out = StringIO()
    call_command("signer_key", "--rotate", stdout=out)
    assert "rotated" in out.getvalue()
    assert SignerKey.objects.filter(retired_at__isnull=True).exclude(pk=first.pk).count() == 1
    first.refresh_from_db()
    assert first.retired_at is not None

    with pytest.raises(CommandError):
        call_command("signer_key")


def test_signer_admin_is_read_only(client, key_file):
    services.signer_key_ensure()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/admin/recordings/signerkey/").status_code == 200
    assert client.get("/admin/recordings/signerkey/add/").status_code == 403
