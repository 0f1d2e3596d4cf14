"""Key-management API: /me/key/, /records/{id}/key-shares/, /grants/pending/, /grants/."""

import hashlib

import pytest

from keeperpam.crypto import keys as crypto_keys
from tests.factories import RecordFactory, UserFactory
from tests.keyring import (
    enrol,
    fast_passwords,  # noqa: F401  (fixture)
    new_client_key,
    protected_blob,
    public_der_of,
    share,
    viewer_role,
)
from vault import key_services, services
from vault.models import RecordKey, RecordKeyShare, UserKey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

ME_KEY = "/api/v1/me/key/"
PENDING = "/api/v1/grants/pending/"
GRANTS = "/api/v1/grants/"


def key_shares_url(record) -> str:
    return f"/api/v1/records/{record.pk}/key-shares/"


# ------------------------------------------------------------------- /me/key/


def test_enrolment_roundtrip_unlocks_client_side(api_client):
    user = UserFactory()
    api_client.force_authenticate(user)
    response = api_client.get(ME_KEY)
    assert response.status_code == 404
    assert response.json() == {"detail": "No key enrolled yet."}

    # The client makes and protects the key; only the results go to the server.
    client_key = new_client_key(user)
    protected = crypto_keys.user_key_protect(
        client_key.private_key, passphrase="tr0ub4dor&3", user_id=str(user.pk)
    )
    response = api_client.put(ME_KEY, {"public_key": client_key.public_b64u,
                                       "protected_private_key": protected}, format="json")
    assert response.status_code == 201, response.json()
    body = api_client.get(ME_KEY).json()
    assert set(body) == {"public_key", "protected_private_key", "key_id", "created_at",
                         "updated_at"}
    assert body["public_key"] == client_key.public_b64u
    assert body["protected_private_key"] == protected
    assert body["key_id"] == hashlib.sha256(
        crypto_keys.b64u_decode(client_key.public_b64u)).hexdigest()

    unlocked = crypto_keys.user_key_unlock(body["protected_private_key"],
                                           passphrase="tr0ub4dor&3", user_id=str(user.pk))
    assert public_der_of(unlocked) == client_key.public_b64u


def test_passphrase_change_keeps_the_key_and_a_different_key_is_refused(api_client):
    user = UserFactory()
    record = RecordFactory()
    viewer_role(user)
    share(record, user)
    client_key = enrol(user)
    key_services.record_key_for_sealing(record=record)
    api_client.force_authenticate(user)
    key_id = api_client.get(ME_KEY).json()["key_id"]

    reprotected = {**protected_blob(), "iterations": 1_500_000}
    response = api_client.put(ME_KEY, {"public_key": client_key.public_b64u,
                                       "protected_private_key": reprotected}, format="json")
    assert response.status_code == 200
    assert response.json()["key_id"] == key_id
    assert response.json()["protected_private_key"]["iterations"] == 1_500_000

    other = new_client_key(user)
    response = api_client.put(ME_KEY, {"public_key": other.public_b64u,
                                       "protected_private_key": protected_blob()}, format="json")
    assert response.status_code == 409
    assert "different key" in response.json()["detail"]
    assert '"reset": true' in response.json()["detail"]
    assert UserKey.objects.get(user=user).key_id == key_id

    response = api_client.put(ME_KEY, {"public_key": other.public_b64u, "reset": True,
                                       "protected_private_key": protected_blob()}, format="json")
    assert response.status_code == 200
    assert response.json()["key_id"] == crypto_keys.record_key_id(other.private_key)
    assert not RecordKeyShare.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"protected_private_key": {**protected_blob(), "iterations": 100_000}},
         "protected_private_key"),
        ({"protected_private_key": "not an object"}, "protected_private_key"),
        ({"public_key": "AAAA"}, "public_key"),
        ({"public_key": None}, "public_key"),
    ],
)
def test_bad_enrolment_is_a_clear_400(api_client, payload, field):
    user = UserFactory()
    api_client.force_authenticate(user)
    body = {"public_key": new_client_key(user).public_b64u,
            "protected_private_key": protected_blob(), **payload}
    response = api_client.put(ME_KEY, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["detail"].startswith("Invalid input")
    assert not UserKey.objects.exists()


def test_anonymous_gets_nothing(api_client):
    for url in (ME_KEY, PENDING, key_shares_url(RecordFactory())):
        assert api_client.get(url).status_code in (401, 403)


# ------------------------------------------------------- /records/{id}/key-shares/


def test_key_shares_lists_the_callers_shares_and_404s_otherwise(api_client):
    record = RecordFactory()
    holder, no_policy, no_access = UserFactory(), UserFactory(), UserFactory()
    viewer_role(holder, no_access)
    share(record, holder)
    share(record, no_policy)
    holder_key = enrol(holder)
    enrol(no_policy)
    enrol(no_access)
    v1 = key_services.record_key_for_sealing(record=record)
    v1.retired_at = v1.created_at
    v1.save()
    v2 = key_services.record_key_for_sealing(record=record)

    api_client.force_authenticate(holder)
    response = api_client.get(key_shares_url(record))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["record_key_id"], r["version"], r["retired"]) for r in rows] == [
        (v2.key_id, 2, False), (v1.key_id, 1, True)]
    assert set(rows[0]) == {"record_key_id", "version", "public_key", "share", "retired"}
    for row in rows:
        opened = holder_key.open_share(row["share"], row["record_key_id"])
        assert public_der_of(opened) == row["public_key"]

    for outsider in (no_policy, no_access):
        api_client.force_authenticate(outsider)
        assert api_client.get(key_shares_url(record)).status_code == 404
    api_client.force_authenticate(holder)
    assert api_client.get("/api/v1/records/999999/key-shares/").status_code == 404


# ----------------------------------------------------------- pending grants


def test_pending_grant_is_wrapped_by_the_granter_and_opened_by_the_newcomer(api_client):
    record = RecordFactory(name="prod-db")
    granter, newcomer = UserFactory(), UserFactory()
    viewer_role(granter, newcomer)
    share(record, granter)
    granter_key = enrol(granter)
    record_key = key_services.record_key_for_sealing(record=record)

    share(record, newcomer)
    newcomer_key = enrol(newcomer)

    api_client.force_authenticate(granter)
    response = api_client.get(PENDING)
    assert response.status_code == 200
    assert response.json()["results"] == [{
        "record": record.pk, "record_name": "prod-db", "record_key_id": record_key.key_id,
        "version": 1, "user": newcomer.pk, "username": newcomer.username,
        "user_public_key": newcomer_key.public_b64u,
    }]

    # The granter's client: open its own share, re-wrap for the newcomer.
    [mine] = api_client.get(key_shares_url(record)).json()["results"]
    record_private = granter_key.open_share(mine["share"], mine["record_key_id"])
    pending = response.json()["results"][0]
    wrapped = crypto_keys.record_key_share_wrap(
        record_private_key=record_private,
        user_public_key=crypto_keys.record_public_key_load(
            crypto_keys.b64u_decode(pending["user_public_key"])),
        user_id=str(pending["user"]),
    )
    grant = {"shares": [{"record_key_id": pending["record_key_id"], "user": pending["user"],
                         "share": wrapped}]}
    response = api_client.post(GRANTS, grant, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"results": [{"record_key_id": record_key.key_id,
                                            "user": newcomer.pk, "status": "granted"}]}
    response = api_client.post(GRANTS, grant, format="json")
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "already granted"
    assert api_client.get(PENDING).json()["results"] == []

    api_client.force_authenticate(newcomer)
    [theirs] = api_client.get(key_shares_url(record)).json()["results"]
    opened = newcomer_key.open_share(theirs["share"], theirs["record_key_id"])
    assert crypto_keys.record_key_id(opened) == record_key.key_id


def test_grant_refused_for_unauthorised_target_or_granter(api_client):
    record = RecordFactory()
    granter, outsider, bystander = UserFactory(), UserFactory(), UserFactory()
    viewer_role(granter, bystander)
    share(record, granter)
    share(record, bystander)
    granter_key = enrol(granter)
    outsider_key = enrol(outsider)
    record_key = key_services.record_key_for_sealing(record=record)
    record_private = granter_key.open_share(record_key.shares.get(user=granter).share,
                                            record_key.key_id)
    item = {
        "record_key_id": record_key.key_id, "user": outsider.pk,
        "share": crypto_keys.record_key_share_wrap(
            record_private_key=record_private,
            user_public_key=outsider_key.private_key.public_key(), user_id=str(outsider.pk)),
    }
    api_client.force_authenticate(granter)
    response = api_client.post(GRANTS, {"shares": [item]}, format="json")
    assert response.status_code == 400
    assert "may not view recordings" in response.json()["detail"]
    assert response.json()["errors"]["0"]

    # Someone who may view but holds no share cannot grant (nor learn the key exists).
    enrol(bystander)
    record_key.shares.filter(user=bystander).delete()
    api_client.force_authenticate(bystander)
    response = api_client.post(GRANTS, {"shares": [{**item, "user": granter.pk}]}, format="json")
    assert response.status_code == 400
    assert "No record key" in response.json()["detail"]

    for bad in ({"shares": []}, {"shares": [{**item, "record_key_id": "xyz"}]}, {}):
        assert api_client.post(GRANTS, bad, format="json").status_code == 400
    assert not RecordKeyShare.objects.filter(user=outsider).exists()


def test_pending_grants_hidden_from_callers_who_may_not_view(api_client):
    record = RecordFactory()
    granter, newcomer = UserFactory(), UserFactory()
    role = viewer_role(granter, newcomer)
    share(record, granter)
    share(record, newcomer)
    enrol(granter)
    key_services.record_key_for_sealing(record=record)  # newcomer not enrolled yet
    enrol(newcomer)
    api_client.force_authenticate(granter)
    assert len(api_client.get(PENDING).json()["results"]) == 1
    api_client.force_authenticate(newcomer)
    assert api_client.get(PENDING).json()["results"] == []

    # Losing the policy deletes the granter's share too: nothing left to grant.
    from policies.services import role_update

    role_update(role=role, acting_user=None, users=[newcomer])
    api_client.force_authenticate(granter)
    assert api_client.get(PENDING).json()["results"] == []
    assert RecordKey.objects.get(record=record).retired_at is not None


def test_revocation_through_share_revoke_then_version_two(api_client):
    record = RecordFactory()
    keeper, leaver = UserFactory(), UserFactory()
    viewer_role(keeper, leaver)
    share(record, keeper)
    leaver_share = share(record, leaver)
    enrol(keeper)
    enrol(leaver)
    v1 = key_services.record_key_for_sealing(record=record)
    services.record_share_revoke(share=leaver_share, acting_user=keeper)
    api_client.force_authenticate(leaver)
    assert api_client.get(key_shares_url(record)).status_code == 404
    assert not RecordKeyShare.objects.filter(user=leaver).exists()
    v2 = key_services.record_key_for_sealing(record=record)
    assert v2.version == 2
    api_client.force_authenticate(keeper)
    rows = api_client.get(key_shares_url(record)).json()["results"]
    assert [(r["version"], r["retired"]) for r in rows] == [(2, False), (1, True)]
    assert rows[1]["record_key_id"] == v1.key_id


def test_pending_grants_query_count_is_constant(api_client, django_assert_max_num_queries):
    granter = UserFactory()
    newcomers = [UserFactory() for _ in range(3)]
    viewer_role(granter, *newcomers)
    enrol(granter)
    records = [RecordFactory() for _ in range(4)]
    for record in records:
        share(record, granter)
        key_services.record_key_for_sealing(record=record)
        for user in newcomers:
            share(record, user)
    for user in newcomers:
        enrol(user)
    api_client.force_authenticate(granter)
    with django_assert_max_num_queries(12):
        response = api_client.get(PENDING)
    assert response.json()["count"] == 12
