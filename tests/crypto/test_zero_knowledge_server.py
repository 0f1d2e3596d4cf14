"""The vault zone holds no secret: after a full key lifecycle, no table and no log line
contains a passphrase, a user private key or a record private key.

The test plays the clients (browser/CLI) itself: it makes the user keys and
passphrases, protects and unwraps locally, and talks to the server only
through the API (plus the services the sealer and the admin call). Then it
dumps every table two ways and every log record, and looks for every secret
in every encoding a leak could plausibly take.
"""

from __future__ import annotations

import base64
import logging
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.db import connection, connections

from keeperpam.crypto import keys as crypto_keys
from tests.factories import RecordFactory, UserFactory
from tests.keyring import ClientKey, new_client_key, share, viewer_role
from vault import key_services, services

pytestmark = pytest.mark.django_db

ME_KEY = "/api/v1/me/key/"


def _encodings(private_key: ec.EllipticCurvePrivateKey) -> tuple[list[str], list[bytes]]:
    """Text and byte forms in which a private key could leak."""
    der = crypto_keys.private_key_der(private_key)
    scalar = private_key.private_numbers().private_value.to_bytes(32, "big")
    pem = crypto_keys.private_key_pem(private_key).decode()
    texts = [crypto_keys.b64u_encode(der), base64.b64encode(der).decode(), der.hex(),
             pem, "".join(pem.splitlines()[1:-1]),
             crypto_keys.b64u_encode(scalar), base64.b64encode(scalar).decode(), scalar.hex()]
    return texts, [der, scalar]


def _dump_tables() -> tuple[str, list[bytes]]:
    """Every row of every table, as text, plus every binary cell."""
    out = StringIO()
    call_command("dumpdata", stdout=out)
    text = [out.getvalue()]
    blobs: list[bytes] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for cell in row:
                    if isinstance(cell, bytes | memoryview | bytearray):
                        blobs.append(bytes(cell))
                    text.append(str(cell))
    return "\n".join(text), blobs


def _enrol_via_api(api_client, user, passphrase: str, client_key: ClientKey | None = None
                   ) -> ClientKey:
    client_key = client_key or new_client_key(user)
    protected = crypto_keys.user_key_protect(client_key.private_key, passphrase=passphrase,
                                             user_id=client_key.user_id)
    api_client.force_authenticate(user)
    response = api_client.put(ME_KEY, {"public_key": client_key.public_b64u,
                                       "protected_private_key": protected}, format="json")
    assert response.status_code == 201, response.json()
    return client_key


def test_no_secret_reaches_the_database_or_the_logs(api_client, caplog, monkeypatch, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")  # Django's own default is INFO
    # Log every SQL statement with its parameters, as DEBUG=True would.
    monkeypatch.setattr(connections["default"], "force_debug_cursor", True)
    responses: list[bytes] = []

    record_private_keys: list[ec.EllipticCurvePrivateKey] = []
    real_generate = crypto_keys.record_key_generate

    def spy() -> ec.EllipticCurvePrivateKey:
        key = real_generate()
        record_private_keys.append(key)
        return key

    passphrases = {name: f"{name} correct horse battery staple ✓" for name in
                   ("alice", "alice-new", "bob", "carol")}
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    record = RecordFactory(name="zk-db")
    viewer_role(alice, bob, carol)
    share(record, alice)
    carol_share = share(record, carol)

    # Enrolment, and a passphrase change that keeps the key.
    alice_key = _enrol_via_api(api_client, alice, passphrases["alice"])
    carol_key = _enrol_via_api(api_client, carol, passphrases["carol"])
    api_client.force_authenticate(alice)
    reprotected = crypto_keys.user_key_protect(
        alice_key.private_key, passphrase=passphrases["alice-new"], user_id=alice_key.user_id)
    response = api_client.put(ME_KEY, {"public_key": alice_key.public_b64u,
                                       "protected_private_key": reprotected}, format="json")
    assert response.status_code == 200
    responses.append(response.content)

    recovery_private = real_generate()
    bob_client_key = new_client_key(bob)  # made now so the spy below sees only record keys
    key_services.recovery_key_enrol(
        public_key=crypto_keys.b64u_encode(crypto_keys.public_key_der(
            recovery_private.public_key())), label="Offline safe", acting_user=None)

    # The sealer makes the record key (the spy keeps it for the search below).
    monkeypatch.setattr(crypto_keys, "record_key_generate", spy)
    v1 = key_services.record_key_for_sealing(record=record)

    # A newcomer, granted through the pending-grants API by alice's client.
    share(record, bob)
    bob_key = _enrol_via_api(api_client, bob, passphrases["bob"], bob_client_key)
    api_client.force_authenticate(alice)
    me = api_client.get(ME_KEY).json()
    unlocked = crypto_keys.user_key_unlock(me["protected_private_key"],
                                           passphrase=passphrases["alice-new"],
                                           user_id=str(alice.pk))
    [pending] = api_client.get("/api/v1/grants/pending/").json()["results"]
    [mine] = api_client.get(f"/api/v1/records/{record.pk}/key-shares/").json()["results"]
    record_private = crypto_keys.record_key_share_unwrap(
        mine["share"], user_private_key=unlocked, user_id=str(alice.pk),
        record_kid=mine["record_key_id"])
    wrapped = crypto_keys.record_key_share_wrap(
        record_private_key=record_private,
        user_public_key=crypto_keys.record_public_key_load(
            crypto_keys.b64u_decode(pending["user_public_key"])),
        user_id=str(pending["user"]))
    response = api_client.post("/api/v1/grants/", {"shares": [{
        "record_key_id": pending["record_key_id"], "user": pending["user"], "share": wrapped,
    }]}, format="json")
    assert response.status_code == 201
    api_client.force_authenticate(bob)
    [theirs] = api_client.get(f"/api/v1/records/{record.pk}/key-shares/").json()["results"]
    assert crypto_keys.record_key_id(bob_key.open_share(theirs["share"], v1.key_id)) == v1.key_id

    # Revocation, then a new record key version for the next session.
    services.record_share_revoke(share=carol_share, acting_user=alice)
    v2 = key_services.record_key_for_sealing(record=record)
    assert v2.version == 2
    for user in (alice, bob, carol):
        api_client.force_authenticate(user)
        for url in (ME_KEY, "/api/v1/grants/pending/",
                    f"/api/v1/records/{record.pk}/key-shares/"):
            responses.append(api_client.get(url).content)

    assert {crypto_keys.record_key_id(k) for k in record_private_keys} == {v1.key_id, v2.key_id}

    # ---- the search
    table_text, table_blobs = _dump_tables()
    log_text = "\n".join(
        f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records
    )
    assert "INSERT" in log_text  # the SQL log was captured, so the search means something
    # Positive controls: what *is* stored and logged is found, so a leak would be too.
    assert v1.public_key in table_text
    assert v1.public_key in log_text
    assert theirs["share"] in table_text
    haystacks = {"tables": table_text, "logs": log_text,
                 "responses": b"\n".join(responses).decode()}

    secrets: dict[str, ec.EllipticCurvePrivateKey] = {
        "alice user key": alice_key.private_key, "bob user key": bob_key.private_key,
        "carol user key": carol_key.private_key, "recovery key": recovery_private,
    }
    secrets.update({f"record key {i}": k for i, k in enumerate(record_private_keys)})
    for name, private_key in secrets.items():
        texts, raw_forms = _encodings(private_key)
        for where, haystack in haystacks.items():
            for form in texts:
                assert form not in haystack, f"{name} found in {where}"
        for blob in table_blobs:
            for form in raw_forms:
                assert form not in blob, f"{name} found in a binary column"
        for form in raw_forms:
            assert form.hex() not in table_text.lower(), f"{name} found in tables (hex)"
    for name, passphrase in passphrases.items():
        for where, haystack in haystacks.items():
            assert passphrase not in haystack, f"passphrase {name} found in {where}"
            assert passphrase.encode("utf-8").hex() not in haystack, (
                f"passphrase {name} found in {where} (hex)")
