"""The roles and policies API: holders read, superusers write, changes apply at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from policies.choices import Policy
from policies.models import Role
from policies.services import role_create
from tests.factories import GroupFactory, RecordFactory, RoleFactory, UserFactory
from vault import services
from vault.choices import AccessLevel, RecordType
from vault.models import AuditEvent

pytestmark = pytest.mark.django_db

ROLES = "/api/v1/roles/"
RECORDS = "/api/v1/records/"
NO_POLICIES = {p: False for p in Policy.values}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # UserFactory sets a password; the production hasher costs ~0.5 s a user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser():
    return UserFactory(is_superuser=True, is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_unauthenticated_callers_get_nothing(api_client):
    assert api_client.get(ROLES).status_code in (401, 403)
    assert api_client.get("/api/v1/policies/").status_code in (401, 403)


def test_superusers_see_every_role_with_policies_and_members(superuser):
    member = UserFactory()
    group = GroupFactory()
    role_create(acting_user=None, name="Auditors", users=[member], groups=[group],
                can_view_recordings=True)
    RoleFactory(name="Admins", can_configure_connections=True)
    body = client_for(superuser).get(ROLES).json()
    assert body["count"] == 2
    rows = {row["name"]: row for row in body["results"]}
    auditors = rows["Auditors"]
    assert auditors["policies"] == {**NO_POLICIES, "can_view_recordings": True}
    assert auditors["can_view_recordings"] is True
    assert auditors["users"] == [member.pk]
    assert auditors["groups"] == [group.pk]
    assert set(auditors) >= {"id", "name", "description", "created_at", "updated_at"}


def test_others_see_only_roles_they_hold_directly_or_by_group():
    user = UserFactory()
    group = GroupFactory()
    user.groups.add(group)
    direct = role_create(acting_user=None, name="Direct", users=[user])
    by_group = role_create(acting_user=None, name="ByGroup", groups=[group])
    # Held both ways: listed once.
    both = role_create(acting_user=None, name="Both", users=[user], groups=[group])
    hidden = RoleFactory(name="Hidden")
    client = client_for(user)
    body = client.get(ROLES).json()
    assert [row["name"] for row in body["results"]] == ["Both", "ByGroup", "Direct"]
    assert body["count"] == 3
    for role in (direct, by_group, both):
        assert client.get(f"{ROLES}{role.pk}/").status_code == 200
    assert client.get(f"{ROLES}{hidden.pk}/").status_code == 404


def test_role_filters(superuser):
    user = UserFactory()
    role_create(acting_user=None, name="Viewers", users=[user], can_view_recordings=True)
    RoleFactory(name="Configurers", can_configure_connections=True)
    client = client_for(superuser)
    rows = client.get(f"{ROLES}?can_view_recordings=true").json()["results"]
    assert [row["name"] for row in rows] == ["Viewers"]
    rows = client.get(f"{ROLES}?user={user.pk}").json()["results"]
    assert [row["name"] for row in rows] == ["Viewers"]
    rows = client.get(f"{ROLES}?search=config").json()["results"]
    assert [row["name"] for row in rows] == ["Configurers"]


def test_superuser_crud_goes_through_audited_services(superuser):
    member = UserFactory()
    group = GroupFactory()
    client = client_for(superuser)
    created = client.post(ROLES, {"name": "RBI", "can_configure_remote_browsing": True,
                                  "users": [member.pk], "groups": [group.pk]})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["policies"] == {**NO_POLICIES, "can_configure_remote_browsing": True}
    assert body["users"] == [member.pk]
    pk = body["id"]
    assert AuditEvent.objects.filter(object_type="policies.role", object_id=str(pk),
                                     action="create").exists()

    patched = client.patch(f"{ROLES}{pk}/", {"can_view_rbi_recordings": True, "users": []})
    assert patched.status_code == 200
    assert patched.json()["policies"]["can_view_rbi_recordings"] is True
    assert patched.json()["users"] == []
    assert patched.json()["groups"] == [group.pk]

    put = client.put(f"{ROLES}{pk}/", {"name": "RBI admins", "description": "d"})
    assert put.status_code == 200
    assert put.json()["name"] == "RBI admins"

    assert client.delete(f"{ROLES}{pk}/").status_code == 204
    assert not Role.objects.filter(pk=pk).exists()
    assert AuditEvent.objects.filter(object_type="policies.role", object_id=str(pk),
                                     action="delete").exists()


def test_role_validation_errors_are_clear_json(superuser):
    RoleFactory(name="Taken")
    response = client_for(superuser).post(ROLES, {"name": "Taken", "users": [999999]})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("Invalid input:")
    assert {"name", "users"} <= set(body["errors"])


def test_holders_may_read_but_not_change_their_roles():
    user = UserFactory()
    held = role_create(acting_user=None, name="Held", users=[user])
    hidden = RoleFactory(name="Hidden")
    client = client_for(user)
    refused = client.patch(f"{ROLES}{held.pk}/", {"can_configure_connections": True})
    assert refused.status_code == 403
    assert "superusers" in refused.json()["detail"]
    assert client.delete(f"{ROLES}{held.pk}/").status_code == 403
    assert client.patch(f"{ROLES}{hidden.pk}/", {"name": "x"}).status_code == 404
    assert client.delete(f"{ROLES}{hidden.pk}/").status_code == 404
    assert client.post(ROLES, {"name": "Mine", "can_configure_connections": True}
                       ).status_code == 403
    held.refresh_from_db()
    assert held.can_configure_connections is False
    assert not Role.objects.filter(name="Mine").exists()


def test_removing_a_role_member_turns_recordings_off_on_the_next_call(superuser):
    auditor = UserFactory()
    role = role_create(acting_user=None, name="Auditors", users=[auditor],
                       can_view_recordings=True)
    record = RecordFactory()
    services.record_share_grant(record=record, user=auditor, access=AccessLevel.VIEW,
                                acting_user=None)
    auditor_client = client_for(auditor)
    row = auditor_client.get(f"{RECORDS}{record.pk}/").json()
    assert row["permissions"]["can_view_recordings"] is True

    assert client_for(superuser).patch(f"{ROLES}{role.pk}/", {"users": []}).status_code == 200
    row = auditor_client.get(f"{RECORDS}{record.pk}/").json()
    assert row["permissions"]["can_view_recordings"] is False
    assert auditor_client.get(f"{ROLES}{role.pk}/").status_code == 404


def test_deleting_a_role_takes_its_configure_rights_at_once(superuser):
    configurer = UserFactory()
    role = role_create(acting_user=None, name="Configurers", users=[configurer],
                       can_configure_connections=True)
    record = RecordFactory(record_type=RecordType.MACHINE)
    services.record_share_grant(record=record, user=configurer, access=AccessLevel.EDIT,
                                acting_user=None)
    client = client_for(configurer)
    assert client.patch(f"{RECORDS}{record.pk}/", {"notes": "a"}).status_code == 200
    assert client_for(superuser).delete(f"{ROLES}{role.pk}/").status_code == 204
    assert client.patch(f"{RECORDS}{record.pk}/", {"notes": "b"}).status_code == 403
    assert client.get(f"{RECORDS}{record.pk}/").json()["permissions"]["can_configure"] is False


def test_policies_endpoint_lists_the_four_policies():
    response = client_for(UserFactory()).get("/api/v1/policies/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    by_value = {row["value"]: row for row in body["results"]}
    assert set(by_value) == set(Policy.values)
    for policy in Policy:
        assert by_value[policy.value]["label"] == policy.label
        assert by_value[policy.value]["description"]
    assert by_value["can_view_rbi_recordings"]["record_types"] == [RecordType.REMOTE_BROWSING]
    assert by_value["can_configure_connections"]["kind"] == "configure"
    assert RecordType.REMOTE_BROWSING not in by_value["can_view_recordings"]["record_types"]


def test_role_list_query_count_is_constant(superuser, django_assert_num_queries):
    def add_role() -> None:
        role_create(acting_user=None, name=f"Role {Role.objects.count()}",
                    users=[UserFactory()], groups=[GroupFactory()])

    add_role()
    client = client_for(superuser)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"{ROLES}?page_size=200").status_code == 200
    for _ in range(49):
        add_role()
    with django_assert_num_queries(len(captured)):
        body = client.get(f"{ROLES}?page_size=200").json()
    assert body["count"] == 50
