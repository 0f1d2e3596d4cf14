"""Key services: enrolment, sealing keys, grants, revocation, and who may receive a share."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from guardian.models import UserObjectPermission

from keeperpam.crypto import keys as crypto_keys
from policies import selectors as policy_selectors
from policies.services import role_delete, role_update
from tests.factories import GroupFactory, RecordFactory, SharedFolderFactory, UserFactory
from tests.keyring import (
    enrol,
    fast_passwords,  # noqa: F401  (fixture)
    new_client_key,
    protected_blob,
    public_der_of,
    share,
    viewer_role,
)
from vault import key_selectors, key_services, services
from vault.choices import AccessLevel, RecordType
from vault.models import AuditEvent, RecordKey, RecordKeyShare, RecoveryKey, UserKey
from vault.tasks import key_shares_reconcile_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def _recovery():
    """An enrolled recovery key and its (offline) private half."""
    private_key = crypto_keys.record_key_generate()
    recovery = key_services.recovery_key_enrol(
        public_key=public_der_of(private_key), label="Safe", acting_user=None
    )
    return recovery, private_key


# ------------------------------------------------------------------- enrolment


def test_enrol_then_passphrase_change_keeps_the_key():
    user = UserFactory()
    client_key = new_client_key(user)
    user_key, created = key_services.user_key_set(
        user=user, public_key=client_key.public_b64u, protected_private_key=protected_blob()
    )
    assert created
    assert user_key.key_id == crypto_keys.record_key_id(client_key.private_key)

    reprotected = {**protected_blob(), "iterations": 1_200_000}
    again, created = key_services.user_key_set(
        user=user, public_key=client_key.public_b64u, protected_private_key=reprotected
    )
    assert not created
    assert again.pk == user_key.pk
    assert again.key_id == user_key.key_id
    assert UserKey.objects.get(user=user).protected_private_key["iterations"] == 1_200_000


def test_different_key_refused_while_shares_exist_unless_reset():
    user = UserFactory()
    record = RecordFactory()
    viewer_role(user)
    share(record, user)
    enrol(user)
    record_key = key_services.record_key_for_sealing(record=record)
    other = new_client_key(user)

    with pytest.raises(key_services.UserKeyChangeRefused, match="reset"):
        key_services.user_key_set(user=user, public_key=other.public_b64u,
                                  protected_private_key=protected_blob())
    assert record_key.shares.filter(user=user).exists()

    key_services.user_key_set(user=user, public_key=other.public_b64u,
                              protected_private_key=protected_blob(), reset=True)
    assert not record_key.shares.filter(user=user).exists()
    assert UserKey.objects.get(user=user).key_id == crypto_keys.record_key_id(other.private_key)
    # Nobody else holds the key, so nobody can grant it; the record key stays current.
    assert key_services.record_key_for_sealing(record=record).pk == record_key.pk


def test_different_key_without_shares_is_simply_replaced():
    user = UserFactory()
    enrol(user)
    other = new_client_key(user)
    key_services.user_key_set(user=user, public_key=other.public_b64u,
                              protected_private_key=protected_blob())
    assert UserKey.objects.get(user=user).key_id == crypto_keys.record_key_id(other.private_key)


def _der(key) -> str:
    return crypto_keys.b64u_encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize(
    "public_key",
    [
        "not base64!",
        crypto_keys.b64u_encode(b"\x30\x03garbage"),
        _der(ec.generate_private_key(ec.SECP384R1())),
        _der(ed25519.Ed25519PrivateKey.generate()),
        crypto_keys.b64u_encode(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) + b"\0"),
    ],
    ids=["not-b64u", "not-der", "p384", "ed25519", "trailing-bytes"],
)
def test_bad_public_keys_are_refused(public_key):
    with pytest.raises(ValidationError) as exc:
        key_services.user_key_set(user=UserFactory(), public_key=public_key,
                                  protected_private_key=protected_blob())
    assert "public_key" in exc.value.message_dict


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iterations": 999_999}, "iterations"),
        ({"iterations": True}, "iterations"),
        ({"iterations": "1000000"}, "iterations"),
        ({"kdf": "argon2id"}, "kdf"),
        ({"salt": crypto_keys.b64u_encode(b"x" * 8)}, "salt"),
        ({"nonce": "AAAA="}, "nonce"),
        ({"ct": crypto_keys.b64u_encode(b"x" * 20)}, "ct"),
        ({"extra": 1}, "exactly"),
    ],
)
def test_bad_protected_keys_are_refused(change, message):
    blob = {**protected_blob(), **change}
    with pytest.raises(ValidationError, match=message):
        key_services.user_key_set(user=UserFactory(), public_key=new_client_key(
            UserFactory()).public_b64u, protected_private_key=blob)


# ------------------------------------------------------- who may receive a share


def test_users_who_may_view_recordings_needs_policy_and_access(django_assert_num_queries):
    record = RecordFactory(record_type=RecordType.MACHINE)
    folder = SharedFolderFactory()
    services.record_update(record=record, acting_user=None, folder=folder)
    group = GroupFactory()
    direct, via_group_role, via_folder_group, no_policy, no_access, boss, rbi_only, asleep = (
        UserFactory() for _ in range(8)
    )
    boss.is_superuser = True
    boss.save()
    group.user_set.add(via_group_role, via_folder_group)
    viewer_role(direct, via_folder_group, no_access, boss, asleep,
                can_view_recordings=True)
    grp_role = viewer_role(name="Group auditors", can_view_recordings=True)
    grp_role.groups.add(group)
    viewer_role(rbi_only, name="RBI", can_view_rbi_recordings=True)
    share(record, direct)
    share(record, no_policy)
    share(record, boss)
    share(record, rbi_only)
    share(record, via_group_role)
    share(record, asleep)
    asleep.is_active = False
    asleep.save()
    services.folder_member_set(folder=folder, group=group, access=AccessLevel.VIEW,
                               acting_user=None)
    services.record_share_grant(record=RecordFactory(), user=no_access, access="view",
                                acting_user=None)

    with django_assert_num_queries(1):
        found = set(policy_selectors.users_who_may_view_recordings(record))
    # The superuser holds the policy and a share; only the inactive one is left out.
    assert found == {direct, via_group_role, via_folder_group, boss}
    assert {u for u in found if policy_selectors.may_view_recordings(u, record)} == found
    assert policy_selectors.recording_viewers([record.pk])[record.pk] == {u.pk for u in found}
    assert not policy_selectors.may_view_recordings(no_policy, record)
    assert not policy_selectors.may_view_recordings(rbi_only, record)


def test_recording_viewers_matches_the_single_record_rule_and_is_constant(
    django_assert_max_num_queries,
):
    users = [UserFactory() for _ in range(4)]
    viewer_role(*users[:3], can_view_recordings=True)
    viewer_role(users[3], name="RBI", can_view_rbi_recordings=True)
    records = [RecordFactory(), RecordFactory(record_type=RecordType.REMOTE_BROWSING),
               RecordFactory(record_type=RecordType.DATABASE)]
    for i, record in enumerate(records):
        for user in users[i:]:
            share(record, user)
    with django_assert_max_num_queries(6):
        viewers = policy_selectors.recording_viewers([r.pk for r in records])
    for record in records:
        expected = {u.pk for u in policy_selectors.users_who_may_view_recordings(record)}
        assert viewers[record.pk] == expected
    assert viewers[records[1].pk] == {users[3].pk}


# ------------------------------------------------------------ sealing record keys


def test_record_key_for_sealing_wraps_to_authorised_enrolled_users_and_recovery():
    record = RecordFactory()
    alice, bob, carol, dave, erin = (UserFactory() for _ in range(5))
    viewer_role(alice, bob, carol, erin)  # dave: access but no policy; erin: no access
    for user in (alice, bob, carol, dave):
        share(record, user)
    keys = {u.pk: enrol(u) for u in (alice, bob, dave, erin)}  # carol never enrolled
    recovery, recovery_private = _recovery()

    record_key = key_services.record_key_for_sealing(record=record)

    assert record_key.version == 1
    assert record_key.retired_at is None
    held = {s.user_id for s in record_key.shares.filter(user__isnull=False)}
    assert held == {alice.pk, bob.pk}
    assert record_key.shares.get(recovery__isnull=False).recovery == recovery
    for user in (alice, bob):
        row = record_key.shares.get(user=user)
        opened = keys[user.pk].open_share(row.share, record_key.key_id)
        assert public_der_of(opened) == record_key.public_key
    opened = crypto_keys.record_key_share_unwrap(
        record_key.shares.get(recovery=recovery).share, user_private_key=recovery_private,
        user_id=key_services.RECOVERY_USER_ID, record_kid=record_key.key_id,
    )
    assert public_der_of(opened) == record_key.public_key
    assert crypto_keys.record_key_id(opened) == record_key.key_id

    assert key_services.record_key_for_sealing(record=record) == record_key
    assert RecordKey.objects.filter(record=record).count() == 1


def test_record_key_for_sealing_fails_closed_when_nobody_can_receive_it():
    record = RecordFactory(name="db-prod")
    user = UserFactory()
    viewer_role(user)
    share(record, user)  # may view, but has not enrolled

    with pytest.raises(key_services.NoKeyRecipients) as exc:
        key_services.record_key_for_sealing(record=record)
    assert str(exc.value) == (
        "Nobody can receive the record key for db-prod: no user who may view its recordings "
        "has enrolled a key, and no recovery key is enrolled."
    )
    assert not RecordKey.objects.exists()
    assert not RecordKeyShare.objects.exists()


def test_recovery_key_alone_is_enough_and_only_the_active_one_is_used():
    old, _ = _recovery()
    new, _ = _recovery()
    old.refresh_from_db()
    assert old.retired_at is not None
    assert new.retired_at is None
    record_key = key_services.record_key_for_sealing(record=RecordFactory())
    assert [s.recovery for s in record_key.shares.all()] == [new]


def test_recovery_key_accepts_pem_and_refuses_private_or_duplicate_keys():
    private_key = crypto_keys.record_key_generate()
    pem = crypto_keys.public_key_pem(private_key.public_key()).decode()
    recovery = key_services.recovery_key_enrol(public_key=pem, label="HSM", acting_user=None)
    assert recovery.public_key == public_der_of(private_key)
    with pytest.raises(ValidationError, match="already enrolled"):
        key_services.recovery_key_enrol(public_key=public_der_of(private_key), label="again",
                                        acting_user=None)
    with pytest.raises(ValidationError):
        key_services.recovery_key_enrol(
            public_key=crypto_keys.private_key_pem(private_key).decode(), label="oops",
            acting_user=None)


def test_admin_superuser_enrols_recovery_key_through_the_form(client):
    import vault.admin_keys  # noqa: F401  (registered from vault/admin.py in the project)

    boss = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(boss)
    private_key = crypto_keys.record_key_generate()
    response = client.post("/admin/vault/recoverykey/add/", {
        "label": "Board safe",
        "public_key_input": crypto_keys.public_key_pem(private_key.public_key()).decode(),
    })
    assert response.status_code == 302, response.content
    recovery = RecoveryKey.objects.get()
    assert recovery.key_id == crypto_keys.record_key_id(private_key)
    assert recovery.created_by == boss
    response = client.post("/admin/vault/recoverykey/add/", {
        "label": "Leak", "public_key_input": crypto_keys.private_key_pem(private_key).decode(),
    })
    assert response.status_code == 200
    assert b"private key" in response.content
    assert RecoveryKey.objects.count() == 1
    for path in ("userkey", "recordkey", "recordkeyshare", "recoverykey"):
        assert client.get(f"/admin/vault/{path}/").status_code == 200


# -------------------------------------------------------------------- grants


def test_grant_service_checks_granter_target_and_share():
    record = RecordFactory()
    granter, newcomer, outsider, unenrolled = (UserFactory() for _ in range(4))
    viewer_role(granter, newcomer, outsider, unenrolled)
    share(record, granter)
    granter_key = enrol(granter)
    record_key = key_services.record_key_for_sealing(record=record)
    share(record, newcomer)
    share(record, unenrolled)
    newcomer_key = enrol(newcomer)
    enrol(outsider)
    record_private = granter_key.open_share(record_key.shares.get(user=granter).share,
                                            record_key.key_id)

    def wrapped(user, user_key) -> str:
        return crypto_keys.record_key_share_wrap(
            record_private_key=record_private,
            user_public_key=user_key.private_key.public_key(), user_id=str(user.pk))

    good = {"record_key_id": record_key.key_id, "user": newcomer.pk,
            "share": wrapped(newcomer, newcomer_key)}
    bad_items = [
        ({**good, "user": outsider.pk}, "may not view"),
        ({**good, "user": unenrolled.pk}, "not enrolled"),
        ({**good, "record_key_id": "0" * 64}, "No record key"),
        ({**good, "share": "AAAA"}, "bytes"),
        ({**good, "share": "not b64u"}, "base64url"),
        ({**good, "share": crypto_keys.b64u_encode(b"\x04" + b"\0" * 64 + b"x" * 154)}, "point"),
    ]
    for item, message in bad_items:
        with pytest.raises(ValidationError, match=message):
            key_services.record_key_shares_grant(acting_user=granter, shares=[good, item])
        assert not record_key.shares.filter(user=newcomer).exists()  # all or nothing
    with pytest.raises(ValidationError, match="No record key"):
        key_services.record_key_shares_grant(acting_user=outsider, shares=[good])

    [result] = key_services.record_key_shares_grant(acting_user=granter, shares=[good])
    assert result.status == "granted"
    [result] = key_services.record_key_shares_grant(acting_user=granter, shares=[good])
    assert result.status == "already granted"
    stored = record_key.shares.get(user=newcomer)
    assert stored.created_by == granter
    assert public_der_of(newcomer_key.open_share(stored.share, record_key.key_id)) == (
        record_key.public_key)


def test_pending_grants_cover_every_version_the_granter_holds(django_assert_max_num_queries):
    record = RecordFactory()
    granter, leaver, newcomer = (UserFactory() for _ in range(3))
    viewer_role(granter, leaver, newcomer)
    share(record, granter)
    leaving_share = share(record, leaver)
    enrol(granter)
    enrol(leaver)
    v1 = key_services.record_key_for_sealing(record=record)
    services.record_share_revoke(share=leaving_share, acting_user=None)
    v2 = key_services.record_key_for_sealing(record=record)
    assert key_selectors.pending_grants_for(granter) == []
    share(record, newcomer)
    enrol(newcomer)
    with django_assert_max_num_queries(8):
        pending = key_selectors.pending_grants_for(granter)
    assert [(g.record_key, g.user_key.user) for g in pending] == [(v2, newcomer), (v1, newcomer)]
    # The newcomer holds nothing yet, so cannot grant; the leaver may not view at all.
    assert key_selectors.pending_grants_for(newcomer) == []
    assert key_selectors.pending_grants_for(leaver) == []


# ------------------------------------------------------------------ revocation


def _sealed_record_with(*users):
    record = RecordFactory()
    folder = SharedFolderFactory()
    services.record_update(record=record, acting_user=None, folder=folder)
    role = viewer_role(*users)
    for user in users:
        enrol(user)
    return record, folder, role


def _assert_revoked(record, gone, kept):
    v1 = RecordKey.objects.get(record=record, version=1)
    assert v1.retired_at is not None
    assert not v1.shares.filter(user=gone).exists()
    assert v1.shares.filter(user=kept).exists()
    v2 = key_services.record_key_for_sealing(record=record)
    assert v2.version == 2
    assert set(v2.shares.values_list("user_id", flat=True)) == {kept.pk}
    event = AuditEvent.objects.filter(action="revoke", object_type="vault.recordkeyshare").first()
    assert event is not None
    assert [s["user"] for s in event.before["shares"]] == [gone.pk]
    assert event.after == {"retired_record_keys": [v1.key_id]}


def test_share_revoke_deletes_share_and_starts_a_new_version():
    keeper, gone = UserFactory(), UserFactory()
    record, _, _ = _sealed_record_with(keeper, gone)
    share(record, keeper)
    gone_share = share(record, gone)
    key_services.record_key_for_sealing(record=record)
    services.record_share_revoke(share=gone_share, acting_user=None)
    _assert_revoked(record, gone, keeper)


def test_folder_member_removal_revokes():
    keeper, gone = UserFactory(), UserFactory()
    record, folder, _ = _sealed_record_with(keeper, gone)
    share(record, keeper)
    membership = services.folder_member_set(folder=folder, user=gone, access=AccessLevel.VIEW,
                                            acting_user=None)
    key_services.record_key_for_sealing(record=record)
    services.folder_member_remove(membership=membership, acting_user=None)
    _assert_revoked(record, gone, keeper)


def test_folder_deletion_and_record_move_revoke():
    keeper, gone = UserFactory(), UserFactory()
    record, folder, _ = _sealed_record_with(keeper, gone)
    share(record, keeper)
    services.folder_member_set(folder=folder, user=gone, access=AccessLevel.VIEW,
                               acting_user=None)
    key_services.record_key_for_sealing(record=record)
    services.record_update(record=record, acting_user=None, folder=None)
    _assert_revoked(record, gone, keeper)

    other, other_folder, _ = _sealed_record_with(UserFactory())
    keeper2, gone2 = UserFactory(), UserFactory()
    viewer_role(keeper2, gone2, name="More auditors")
    enrol(keeper2)
    enrol(gone2)
    share(other, keeper2)
    services.folder_member_set(folder=other_folder, user=gone2, access=AccessLevel.VIEW,
                               acting_user=None)
    key_services.record_key_for_sealing(record=other)
    services.folder_delete(folder=other_folder, acting_user=None)
    assert not RecordKeyShare.objects.filter(user=gone2).exists()
    assert key_services.record_key_for_sealing(record=other).version == 2


def test_role_change_and_role_delete_revoke():
    keeper, gone = UserFactory(), UserFactory()
    record, _, role = _sealed_record_with(keeper, gone)
    share(record, keeper)
    share(record, gone)
    key_services.record_key_for_sealing(record=record)
    role_update(role=role, acting_user=keeper, users=[keeper])
    _assert_revoked(record, gone, keeper)
    assert AuditEvent.objects.filter(action="revoke", object_type="vault.recordkeyshare",
                                     actor=keeper).exists()

    role_update(role=role, acting_user=None, can_view_recordings=False)
    assert not RecordKeyShare.objects.filter(user=keeper).exists()
    assert RecordKey.objects.get(record=record, version=2).retired_at is not None

    other_role = viewer_role(keeper, name="Second")
    assert key_services.record_key_for_sealing(record=record).version == 3
    role_delete(role=other_role, acting_user=None)
    assert not RecordKeyShare.objects.filter(user=keeper).exists()
    with pytest.raises(key_services.NoKeyRecipients):
        key_services.record_key_for_sealing(record=record)


def test_revocation_keeps_recovery_shares_and_unaffected_records():
    keeper = UserFactory()
    record, _, role = _sealed_record_with(keeper)
    share(record, keeper)
    recovery, _ = _recovery()
    untouched = RecordFactory()
    share(untouched, keeper)
    role_update(role=role, acting_user=None, users=[])
    assert RecordKeyShare.objects.filter(recovery=recovery).count() == 0  # none sealed yet
    viewer_role(keeper, name="Back")
    record_key = key_services.record_key_for_sealing(record=record)
    role_update(role=role, acting_user=None, description="no change to access")
    assert record_key.shares.count() == 2
    services.record_share_revoke(share=record.shares.get(user=keeper), acting_user=None)
    record_key.refresh_from_db()
    assert record_key.retired_at is not None
    assert list(record_key.shares.values_list("recovery_id", flat=True)) == [recovery.pk]


def test_reconcile_runs_a_constant_number_of_queries(django_assert_max_num_queries):
    users = [UserFactory() for _ in range(3)]
    viewer_role(*users)
    for user in users:
        enrol(user)
    records = [RecordFactory() for _ in range(6)]
    for record in records:
        for user in users:
            share(record, user)
        key_services.record_key_for_sealing(record=record)
    # Access ends behind the services' back, so nothing has reconciled yet.
    UserObjectPermission.objects.filter(user=users[0]).delete()
    assert RecordKeyShare.objects.filter(user=users[0]).count() == 6
    with django_assert_max_num_queries(10):
        deleted = key_services.record_key_shares_reconcile(records=records)
    assert deleted == 6
    assert RecordKey.objects.filter(retired_at__isnull=False).count() == 6


def test_group_removal_in_the_user_admin_revokes_at_once_and_beat_catches_the_rest(client):
    """Group membership is edited in Django's user admin, outside our services."""
    superuser = UserFactory(is_staff=True, is_superuser=True)
    keeper, auditor = UserFactory(), UserFactory()
    auditors = GroupFactory(name="Security Audit")
    auditor.groups.add(auditors)
    viewer_role(keeper)
    viewer_role(name="Auditors").groups.add(auditors)
    record = RecordFactory()
    for user in (keeper, auditor):
        enrol(user)
        share(record, user)
    key_services.record_key_for_sealing(record=record)
    assert RecordKeyShare.objects.filter(user=auditor).exists()

    client.force_login(superuser)
    joined = auditor.date_joined
    response = client.post(f"/admin/auth/user/{auditor.pk}/change/", {
        "username": auditor.username, "is_active": "on", "groups": [],
        "date_joined_0": joined.strftime("%Y-%m-%d"), "date_joined_1": joined.strftime("%H:%M:%S"),
    })
    assert response.status_code == 302, response.content[:2000]
    assert not RecordKeyShare.objects.filter(user=auditor).exists()
    assert RecordKeyShare.objects.filter(user=keeper).exists()

    # A change no admin saw (a script, the shell): the periodic task revokes it.
    get_user_model().objects.filter(pk=keeper.pk).update(is_active=False)
    assert key_shares_reconcile_all.apply().get() == 1
    assert not RecordKeyShare.objects.filter(user=keeper).exists()
