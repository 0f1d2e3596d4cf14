"""Admin Console → Roles: the policies fieldset, audited saves, superusers only."""

from __future__ import annotations

import pytest

from policies.models import Role
from policies.services import role_create
from tests.factories import GroupFactory, UserFactory
from vault.choices import AuditAction
from vault.models import AuditEvent

pytestmark = pytest.mark.django_db

ROLES = "/admin/policies/role/"
POLICIES = (
    ("can_configure_connections", "Can configure connection settings"),
    ("can_view_recordings", "Can view session recordings"),
    ("can_configure_remote_browsing", "Can configure remote browsing"),
    ("can_view_rbi_recordings", "Can view RBI session recordings"),
)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Every factory user gets a password; the production hasher would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(client):
    user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def role_data(**overrides) -> dict:
    data = {"name": "Auditors", "description": "", "users": [], "groups": []}
    data.update(overrides)
    return data


def test_role_form_groups_the_policies_under_privileged_access_manager(client, superuser):
    response = client.get(f"{ROLES}add/")
    assert response.status_code == 200
    fieldsets = {name: options["fields"] for name, options in
                 response.context["adminform"].fieldsets}
    assert fieldsets["Privileged Access Manager"] == [name for name, _ in POLICIES]
    html = response.content.decode()
    assert "Privileged Access Manager" in html
    for name, label in POLICIES:
        assert label in html
        assert str(Role._meta.get_field(name).help_text) in html
    # Members are picked with the two-pane selector.
    assert 'class="selectfilter"' in html or "SelectFilter" in html


def test_adding_a_role_writes_one_audit_row_with_members(client, superuser):
    alice = UserFactory(username="alice")
    ops = GroupFactory(name="ops")
    response = client.post(
        f"{ROLES}add/",
        role_data(can_view_recordings="on", users=[str(alice.pk)], groups=[str(ops.pk)]),
    )
    assert response.status_code == 302
    role = Role.objects.get(name="Auditors")
    assert list(role.users.all()) == [alice]
    assert list(role.groups.all()) == [ops]
    [event] = AuditEvent.objects.filter(object_type="policies.role")
    assert (event.action, event.actor) == (AuditAction.CREATE, superuser)
    assert event.after["users"] == ["alice"]
    assert event.after["groups"] == ["ops"]
    assert event.after["can_view_recordings"] is True


def test_saving_a_role_writes_one_audit_row_and_changes_membership(client, superuser):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    role = role_create(acting_user=None, name="Auditors", users=[alice])
    AuditEvent.objects.all().delete()

    response = client.post(
        f"{ROLES}{role.pk}/change/",
        role_data(can_view_recordings="on", can_view_rbi_recordings="on",
                  users=[str(bob.pk)]),
    )
    assert response.status_code == 302
    role.refresh_from_db()
    assert list(role.users.all()) == [bob]
    assert role.can_view_recordings
    assert role.can_view_rbi_recordings

    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor, event.object_id) == (
        AuditAction.UPDATE, superuser, str(role.pk)
    )
    assert event.before == {"users": ["alice"], "can_view_recordings": False,
                            "can_view_rbi_recordings": False}
    assert event.after == {"users": ["bob"], "can_view_recordings": True,
                           "can_view_rbi_recordings": True}


def test_saving_an_unchanged_role_writes_no_audit_row(client, superuser):
    alice = UserFactory(username="alice")
    role = role_create(acting_user=None, name="Auditors", users=[alice])
    AuditEvent.objects.all().delete()
    response = client.post(f"{ROLES}{role.pk}/change/", role_data(users=[str(alice.pk)]))
    assert response.status_code == 302
    assert not AuditEvent.objects.exists()


def test_role_changelist_shows_policies_and_member_counts(client, superuser):
    role_create(acting_user=None, name="Auditors", can_view_recordings=True,
                users=[UserFactory(), UserFactory()], groups=[GroupFactory()])
    response = client.get(ROLES)
    assert response.status_code == 200
    [row] = response.context["cl"].result_list
    assert (row.user_count, row.group_count) == (2, 1)
    html = response.content.decode()
    assert "Can view session recordings" in html
    assert 'icon-yes.svg' in html
    filtered = client.get(ROLES, {"can_view_recordings__exact": "0"})
    assert list(filtered.context["cl"].result_list) == []


def test_deletes_go_through_the_service(client, superuser):
    one = role_create(acting_user=None, name="One", users=[UserFactory(username="carol")])
    two = role_create(acting_user=None, name="Two")
    three = role_create(acting_user=None, name="Three")
    AuditEvent.objects.all().delete()

    assert client.post(f"{ROLES}{one.pk}/delete/", {"post": "yes"}).status_code == 302
    response = client.post(ROLES, {"action": "delete_selected", "post": "yes",
                                   "_selected_action": [str(two.pk), str(three.pk)]})
    assert response.status_code == 302
    assert not Role.objects.exists()
    events = AuditEvent.objects.filter(action=AuditAction.DELETE, object_type="policies.role")
    assert sorted(e.object_repr for e in events) == ["One", "Three", "Two"]
    assert events.get(object_repr="One").before["users"] == ["carol"]


@pytest.mark.parametrize("policy", [name for name, _ in POLICIES])
def test_roles_are_for_superusers_only(client, policy):
    staff = UserFactory(is_staff=True)
    role = role_create(acting_user=None, name="Mine", users=[staff], **{policy: True})
    client.force_login(staff)
    assert ROLES not in client.get("/admin/").content.decode()
    assert client.get(ROLES).status_code == 403
    assert client.get(f"{ROLES}{role.pk}/change/").status_code == 403
    response = client.post(f"{ROLES}{role.pk}/change/", role_data(
        name="Mine", users=[str(staff.pk)], can_configure_connections="on",
        can_configure_remote_browsing="on", can_view_recordings="on",
        can_view_rbi_recordings="on",
    ))
    assert response.status_code == 403
    role.refresh_from_db()
    assert sum(getattr(role, name) for name, _ in POLICIES) == 1
