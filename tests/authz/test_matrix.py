"""The authorization matrix of the product brief.

view policy on/off × RBI policy on/off × access (none, direct share, folder
view-only, folder edit) × record type × surface (admin, API list, API detail).

In every cell a record is visible exactly when the user has some access to it,
and its recordings are viewable exactly when, in addition, one of the user's
roles holds the view policy for the record's type (*Can view RBI session
recordings* for remote browsing, *Can view session recordings* otherwise).
What may not be seen answers 404 in the API and "doesn't exist" in the admin.
"""

from __future__ import annotations

import itertools

import pytest

from policies.services import role_create
from tests.factories import RecordFactory, SharedFolderFactory, UserFactory
from vault import services
from vault.choices import AccessLevel, RecordType

pytestmark = pytest.mark.django_db

ACCESS_MODES = ("none", "direct", "folder-view", "folder-edit")
RECORD_TYPES = tuple(RecordType.values)
POLICY_COMBOS = list(itertools.product([False, True], [False, True]))


def recordings_viewable(view_policy: bool, rbi_policy: bool, access: str, record_type: str) -> bool:
    if access == "none":
        return False
    if record_type == RecordType.REMOTE_BROWSING:
        return rbi_policy
    return view_policy


@pytest.fixture
def matrix(request):
    """One staff user with the given policies, and one record per (type, access) cell."""
    view_policy, rbi_policy = request.param
    user = UserFactory(is_staff=True)
    owner = UserFactory()
    role_create(
        acting_user=None,
        name="Matrix role",
        can_view_recordings=view_policy,
        can_view_rbi_recordings=rbi_policy,
        users=[user],
    )
    view_folder = SharedFolderFactory(name="View-only folder")
    edit_folder = SharedFolderFactory(name="Edit folder")
    services.folder_member_set(folder=view_folder, user=user, access=AccessLevel.VIEW,
                               acting_user=owner)
    services.folder_member_set(folder=edit_folder, user=user, access=AccessLevel.EDIT,
                               acting_user=owner)
    cells = {}
    for record_type, access in itertools.product(RECORD_TYPES, ACCESS_MODES):
        folder = {"folder-view": view_folder, "folder-edit": edit_folder}.get(access)
        record = RecordFactory(name=f"{record_type}-{access}", record_type=record_type,
                               folder=folder)
        services.record_permissions_sync(records=[record])
        if access == "direct":
            services.record_share_grant(record=record, user=user, access=AccessLevel.VIEW,
                                        acting_user=owner)
        cells[(record_type, access)] = record
    return view_policy, rbi_policy, user, cells


@pytest.mark.parametrize("matrix", POLICY_COMBOS, indirect=True,
                         ids=[f"view={v}-rbi={r}" for v, r in POLICY_COMBOS])
def test_api_list(matrix, api_client):
    view_policy, rbi_policy, user, cells = matrix
    api_client.force_authenticate(user)

    listed = api_client.get("/api/v1/records/", {"page_size": 200}).json()["results"]
    by_id = {row["id"]: row for row in listed}
    viewable_only = api_client.get(
        "/api/v1/records/", {"page_size": 200, "can_view_recordings": "true"}
    ).json()["results"]
    viewable_ids = {row["id"] for row in viewable_only}

    for (record_type, access), record in cells.items():
        expected = recordings_viewable(view_policy, rbi_policy, access, record_type)
        cell = f"{record_type}/{access}"
        assert (record.pk in by_id) == (access != "none"), cell
        if access != "none":
            assert by_id[record.pk]["permissions"]["can_view_recordings"] is expected, cell
        assert (record.pk in viewable_ids) is expected, cell


@pytest.mark.parametrize("matrix", POLICY_COMBOS, indirect=True,
                         ids=[f"view={v}-rbi={r}" for v, r in POLICY_COMBOS])
def test_api_detail(matrix, api_client):
    view_policy, rbi_policy, user, cells = matrix
    api_client.force_authenticate(user)

    for (record_type, access), record in cells.items():
        cell = f"{record_type}/{access}"
        response = api_client.get(f"/api/v1/records/{record.pk}/")
        effective = api_client.get(f"/api/v1/records/{record.pk}/effective-recording/")
        if access == "none":
            assert response.status_code == 404, cell
            assert effective.status_code == 404, cell
            continue
        assert response.status_code == 200, cell
        expected = recordings_viewable(view_policy, rbi_policy, access, record_type)
        assert response.json()["permissions"]["can_view_recordings"] is expected, cell
        assert effective.status_code == 200, cell


@pytest.mark.parametrize("matrix", POLICY_COMBOS, indirect=True,
                         ids=[f"view={v}-rbi={r}" for v, r in POLICY_COMBOS])
def test_admin(matrix, client):
    view_policy, rbi_policy, user, cells = matrix
    client.force_login(user)

    changelist = client.get("/admin/vault/record/", {"all": ""})
    assert changelist.status_code == 200
    listed = changelist.context["cl"].result_list
    listed_ids = {r.pk for r in listed}
    viewable_ids = {r.pk for r in listed if r.recordings_viewable}

    for (record_type, access), record in cells.items():
        cell = f"{record_type}/{access}"
        expected = recordings_viewable(view_policy, rbi_policy, access, record_type)
        assert (record.pk in listed_ids) == (access != "none"), cell
        assert (record.pk in viewable_ids) is expected, cell
        change = client.get(f"/admin/vault/record/{record.pk}/change/")
        if access == "none":
            # The admin's answer to "not yours": back to the index, as if it did not exist.
            assert change.status_code == 302, cell
        else:
            assert change.status_code == 200, cell


def test_group_folder_membership_counts_like_a_user_one(api_client):
    user = UserFactory()
    group = user.groups.create(name="Security Audit")
    folder = SharedFolderFactory()
    record = RecordFactory(folder=folder)
    role_create(acting_user=None, name="Auditors", can_view_recordings=True, groups=[group])
    membership = services.folder_member_set(folder=folder, group=group, access=AccessLevel.VIEW,
                                            acting_user=None)
    api_client.force_authenticate(user)
    assert api_client.get(f"/api/v1/records/{record.pk}/").json()["permissions"][
        "can_view_recordings"
    ] is True

    services.folder_member_remove(membership=membership, acting_user=None)
    assert api_client.get(f"/api/v1/records/{record.pk}/").status_code == 404


def test_role_revocation_is_immediate(api_client):
    user = UserFactory()
    record = RecordFactory()
    services.record_share_grant(record=record, user=user, access=AccessLevel.VIEW,
                                acting_user=None)
    role = role_create(acting_user=None, name="Auditors", can_view_recordings=True, users=[user])
    api_client.force_authenticate(user)
    url = f"/api/v1/records/{record.pk}/"
    assert api_client.get(url).json()["permissions"]["can_view_recordings"] is True

    from policies.services import role_delete

    role_delete(role=role, acting_user=None)
    assert api_client.get(url).json()["permissions"]["can_view_recordings"] is False
