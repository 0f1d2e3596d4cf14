"""The vault API: records, effective recording, shares, configurations, folders, tokens.

Semantics pinned here: what the caller may not see answers 404; what it can
see but may not do answers 403 with a reason; the protocol matrix is refused
with 400 naming the field; every list costs the same number of queries for 1
row as for 100.
"""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from policies.services import role_create, role_update
from tests.factories import (
    GroupFactory,
    PamConfigurationFactory,
    RecordFactory,
    SharedFolderFactory,
    UserFactory,
)
from vault import services
from vault.choices import AccessLevel, Protocol, RecordType
from vault.models import AuditEvent, FolderMembership, PamConfiguration, Record, SharedFolder
from vault.protocols import PROTOCOLS_BY_RECORD_TYPE

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"  # set by UserFactory
RECORDS = "/api/v1/records/"
CONFIGURATIONS = "/api/v1/configurations/"
FOLDERS = "/api/v1/folders/"
TEXT_PROTOCOLS = {Protocol.SSH, Protocol.TELNET, Protocol.MYSQL, Protocol.POSTGRESQL,
                  Protocol.SQL_SERVER}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def user_with(**policies):
    """A user holding a role with the given policies."""
    user = UserFactory()
    if policies:
        role_create(acting_user=None, name=f"role of {user.username}", users=[user], **policies)
    return user


def share(record: Record, user, access: str = AccessLevel.VIEW):
    return services.record_share_grant(record=record, user=user, access=access, acting_user=None)


def record_payload(configuration: PamConfiguration, /, **overrides) -> dict:
    payload = {
        "name": "web-01",
        "record_type": RecordType.MACHINE,
        "protocol": Protocol.SSH,
        "host": "web-01.internal",
        "port": 22,
        "configuration": configuration.pk,
        "graphical_recording": True,
        "text_recording": True,
    }
    payload.update(overrides)
    return payload


def valid_target(record_type: str) -> dict:
    """Host or URL as the record type needs, so only the field under test is wrong."""
    if record_type == RecordType.REMOTE_BROWSING:
        return {"url": "https://intranet.example.test/", "host": ""}
    return {"host": "target.internal"}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # UserFactory sets a password; the production hasher costs ~0.5 s a user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser():
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def configurer():
    return user_with(can_configure_connections=True)


# ------------------------------------------------------------------ auth & tokens


def test_unauthenticated_callers_get_nothing(api_client, superuser):
    RecordFactory()
    for url in (RECORDS, CONFIGURATIONS, FOLDERS, "/api/v1/me/"):
        response = api_client.get(url)
        assert response.status_code in (401, 403)
        assert "detail" in response.json()


def test_token_flow_identifies_the_caller(api_client):
    user = UserFactory()
    response = api_client.post("/api/v1/auth/token/",
                               {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == user.pk
    token = body["token"]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = client.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["id"] == user.pk
    assert me.json()["username"] == user.username
    # Same token on a second exchange.
    again = api_client.post("/api/v1/auth/token/",
                            {"username": user.username, "password": PASSWORD})
    assert again.json()["token"] == token


def test_token_exchange_refuses_bad_credentials_with_json(api_client):
    user = UserFactory()
    response = api_client.post("/api/v1/auth/token/",
                               {"username": user.username, "password": "wrong"})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("Invalid input:")
    assert "non_field_errors" in body["errors"]


def test_a_bad_token_is_refused(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert api_client.get("/api/v1/me/").status_code in (401, 403)


# ------------------------------------------------------------------------ records


def test_record_list_shows_only_visible_records_with_rights(configurer):
    mine = RecordFactory(name="a-mine")
    viewed = RecordFactory(name="b-viewed")
    RecordFactory(name="c-hidden")
    share(mine, configurer, AccessLevel.SHARE)
    share(viewed, configurer, AccessLevel.VIEW)

    response = client_for(configurer).get(RECORDS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    rows = {row["name"]: row for row in body["results"]}
    assert set(rows) == {"a-mine", "b-viewed"}
    assert rows["a-mine"]["permissions"] == {
        "can_configure": True, "can_share": True, "can_view_recordings": False,
    }
    assert rows["b-viewed"]["permissions"] == {
        "can_configure": False, "can_share": False, "can_view_recordings": False,
    }
    row = rows["a-mine"]
    assert row["configuration"] == mine.configuration_id
    assert row["configuration_name"] == mine.configuration.name
    assert row["folder"] is None
    assert row["folder_name"] is None
    assert set(row) >= {"id", "record_type", "protocol", "host", "port", "url",
                        "graphical_recording", "text_recording", "notes", "created_at",
                        "updated_at"}


def test_superuser_sees_every_record_but_not_their_recordings(superuser):
    RecordFactory.create_batch(3)
    role_create(acting_user=None, name="viewers", users=[superuser], can_view_recordings=True)
    body = client_for(superuser).get(RECORDS).json()
    assert body["count"] == 3
    for row in body["results"]:
        assert row["permissions"]["can_configure"] is True
        assert row["permissions"]["can_share"] is True
        # Separation of duties: no superuser exception for recordings.
        assert row["permissions"]["can_view_recordings"] is False


def test_retrieve_hidden_record_is_404_and_visible_is_200():
    user = UserFactory()
    visible, hidden = RecordFactory(), RecordFactory()
    share(visible, user)
    client = client_for(user)
    assert client.get(f"{RECORDS}{visible.pk}/").status_code == 200
    response = client.get(f"{RECORDS}{hidden.pk}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert client.get(f"{RECORDS}999999/").status_code == 404


def test_create_record_through_the_service(configurer):
    configuration = PamConfigurationFactory()
    response = client_for(configurer).post(RECORDS, record_payload(configuration))
    assert response.status_code == 201, response.json()
    body = response.json()
    record = Record.objects.get(pk=body["id"])
    assert record.created_by == configurer
    assert body["permissions"]["can_configure"] is True
    assert body["permissions"]["can_share"] is True  # the creator gets a share-level share
    assert AuditEvent.objects.filter(object_type="vault.record", object_id=str(record.pk),
                                     action="create").exists()


def test_create_needs_a_configure_policy():
    configuration = PamConfigurationFactory()
    response = client_for(UserFactory()).post(RECORDS, record_payload(configuration))
    assert response.status_code == 403
    assert "configure" in response.json()["detail"]


def test_create_needs_the_policy_for_that_record_type(configurer):
    configuration = PamConfigurationFactory()
    payload = record_payload(configuration, record_type=RecordType.REMOTE_BROWSING,
                             protocol=Protocol.RBI, text_recording=False,
                             **valid_target(RecordType.REMOTE_BROWSING))
    response = client_for(configurer).post(RECORDS, payload)
    assert response.status_code == 403
    assert "PAM Remote Browsing" in response.json()["detail"]

    rbi_configurer = user_with(can_configure_remote_browsing=True)
    assert client_for(rbi_configurer).post(RECORDS, payload).status_code == 201
    machine = record_payload(configuration, name="other")
    assert client_for(rbi_configurer).post(RECORDS, machine).status_code == 403


def test_create_refuses_unknown_configuration_with_field_error(configurer):
    response = client_for(configurer).post(
        RECORDS, record_payload(PamConfigurationFactory(), configuration=999999)
    )
    assert response.status_code == 400
    assert "configuration" in response.json()["errors"]


def test_create_refuses_a_folder_the_caller_cannot_see(configurer):
    folder = SharedFolderFactory()
    response = client_for(configurer).post(
        RECORDS, record_payload(PamConfigurationFactory(), folder=folder.pk)
    )
    assert response.status_code == 400
    assert "folder" in response.json()["errors"]


def test_create_in_a_folder_needs_folder_management(configurer):
    folder = SharedFolderFactory()
    services.folder_member_set(folder=folder, user=configurer, access=AccessLevel.EDIT,
                               acting_user=None)
    payload = record_payload(PamConfigurationFactory(), folder=folder.pk)
    response = client_for(configurer).post(RECORDS, payload)
    assert response.status_code == 403
    services.folder_member_set(folder=folder, user=configurer, access=AccessLevel.SHARE,
                               acting_user=None)
    response = client_for(configurer).post(RECORDS, payload)
    assert response.status_code == 201
    assert response.json()["folder_name"] == folder.name


def test_validation_errors_are_clear_json(configurer):
    response = client_for(configurer).post(
        RECORDS, {"name": "", "record_type": "nonsense", "configuration": "x"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("Invalid input:")
    assert {"name", "record_type", "protocol", "configuration"} <= set(body["errors"])


def test_port_out_of_range_is_refused(configurer):
    response = client_for(configurer).post(
        RECORDS, record_payload(PamConfigurationFactory(), port=70000)
    )
    assert response.status_code == 400
    assert "port" in response.json()["errors"]


def test_host_is_required_for_non_browsing_records(configurer):
    response = client_for(configurer).post(
        RECORDS, record_payload(PamConfigurationFactory(), host="")
    )
    assert response.status_code == 400
    assert "host" in response.json()["errors"]


# ------------------------------------------------------------ the protocol matrix

FORBIDDEN_PAIRS = [
    (record_type, protocol)
    for record_type in RecordType.values
    for protocol in Protocol.values
    if protocol not in PROTOCOLS_BY_RECORD_TYPE[record_type]
]
# A record type that does take each graphical-only protocol.
GRAPHICAL_ONLY = [
    (RecordType.MACHINE, Protocol.RDP),
    (RecordType.MACHINE, Protocol.VNC),
    (RecordType.DIRECTORY, Protocol.RDP),
    (RecordType.REMOTE_BROWSING, Protocol.RBI),
]


@pytest.mark.parametrize(("record_type", "protocol"), FORBIDDEN_PAIRS)
def test_create_refuses_a_protocol_the_record_type_does_not_take(superuser, record_type,
                                                                 protocol):
    payload = record_payload(PamConfigurationFactory(), record_type=record_type,
                             protocol=protocol, text_recording=False,
                             **valid_target(record_type))
    response = client_for(superuser).post(RECORDS, payload)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert "protocol" in body["errors"]
    assert body["detail"].startswith("Invalid input:")
    assert not Record.objects.exists()


@pytest.mark.parametrize(("record_type", "protocol"), FORBIDDEN_PAIRS)
def test_patch_refuses_a_protocol_the_record_type_does_not_take(superuser, record_type,
                                                                protocol):
    record = RecordFactory(record_type=record_type)
    response = client_for(superuser).patch(f"{RECORDS}{record.pk}/", {"protocol": protocol})
    assert response.status_code == 400
    assert "protocol" in response.json()["errors"]
    record.refresh_from_db()
    assert record.protocol in PROTOCOLS_BY_RECORD_TYPE[record_type]


@pytest.mark.parametrize(("record_type", "protocol"), GRAPHICAL_ONLY)
def test_create_refuses_text_recording_on_graphical_protocols(superuser, record_type,
                                                              protocol):
    payload = record_payload(PamConfigurationFactory(), record_type=record_type,
                             protocol=protocol, text_recording=True,
                             **valid_target(record_type))
    response = client_for(superuser).post(RECORDS, payload)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["text_recording"]
    assert "typescript" in errors["text_recording"][0]
    assert not Record.objects.exists()


@pytest.mark.parametrize(("record_type", "protocol"), GRAPHICAL_ONLY)
def test_patch_refuses_text_recording_on_graphical_protocols(superuser, record_type,
                                                             protocol):
    record = RecordFactory(record_type=record_type, protocol=protocol)
    response = client_for(superuser).patch(f"{RECORDS}{record.pk}/", {"text_recording": True})
    assert response.status_code == 400
    assert "text_recording" in response.json()["errors"]
    record.refresh_from_db()
    assert record.text_recording is False


def test_changing_protocol_under_text_recording_is_refused(superuser):
    record = RecordFactory(protocol=Protocol.SSH, text_recording=True)
    response = client_for(superuser).patch(f"{RECORDS}{record.pk}/", {"protocol": Protocol.RDP})
    assert response.status_code == 400
    assert "text_recording" in response.json()["errors"]
    ok = client_for(superuser).patch(f"{RECORDS}{record.pk}/",
                                     {"protocol": Protocol.RDP, "text_recording": False})
    assert ok.status_code == 200
    assert ok.json()["protocol"] == Protocol.RDP


def test_changing_record_type_away_from_its_protocol_is_refused(superuser):
    record = RecordFactory(record_type=RecordType.MACHINE, protocol=Protocol.SSH)
    response = client_for(superuser).patch(f"{RECORDS}{record.pk}/",
                                           {"record_type": RecordType.DATABASE})
    assert response.status_code == 400
    assert "protocol" in response.json()["errors"]


# ------------------------------------------------------------------ update/delete


def test_update_and_delete_by_a_configurer_with_edit_access(configurer):
    record = RecordFactory()
    share(record, configurer, AccessLevel.EDIT)
    client = client_for(configurer)
    response = client.patch(f"{RECORDS}{record.pk}/", {"notes": "patched", "port": 2222})
    assert response.status_code == 200, response.json()
    assert response.json()["notes"] == "patched"
    record.refresh_from_db()
    assert (record.notes, record.port) == ("patched", 2222)

    put = client.put(f"{RECORDS}{record.pk}/", record_payload(record.configuration,
                                                              name="renamed"))
    assert put.status_code == 200
    assert put.json()["name"] == "renamed"

    assert client.delete(f"{RECORDS}{record.pk}/").status_code == 204
    assert not Record.objects.filter(pk=record.pk).exists()


def test_visible_but_not_configurable_is_403_and_hidden_is_404(configurer):
    viewed, hidden = RecordFactory(), RecordFactory()
    share(viewed, configurer, AccessLevel.VIEW)
    client = client_for(configurer)
    for method in ("patch", "delete"):
        response = getattr(client, method)(f"{RECORDS}{viewed.pk}/", {"notes": "x"})
        assert response.status_code == 403
        assert "may not change" in response.json()["detail"]
        assert getattr(client, method)(f"{RECORDS}{hidden.pk}/",
                                       {"notes": "x"}).status_code == 404
    # Edit access without the configure policy is not enough either.
    editor = UserFactory()
    share(viewed, editor, AccessLevel.EDIT)
    assert client_for(editor).patch(f"{RECORDS}{viewed.pk}/", {"notes": "x"}).status_code == 403
    viewed.refresh_from_db()
    assert viewed.notes == ""


def test_changing_to_a_type_the_caller_may_not_configure_is_403(configurer):
    record = RecordFactory(record_type=RecordType.MACHINE)
    share(record, configurer, AccessLevel.EDIT)
    response = client_for(configurer).patch(
        f"{RECORDS}{record.pk}/",
        {"record_type": RecordType.REMOTE_BROWSING, "protocol": Protocol.RBI,
         **valid_target(RecordType.REMOTE_BROWSING)},
    )
    assert response.status_code == 403


# ------------------------------------------------------------------ filters


def test_record_filters_search_and_ordering(superuser):
    db_conf = PamConfigurationFactory()
    folder = SharedFolderFactory()
    RecordFactory(name="alpha", record_type=RecordType.MACHINE, protocol=Protocol.SSH,
                  host="alpha.corp", graphical_recording=True)
    RecordFactory(name="bravo", record_type=RecordType.DATABASE, protocol=Protocol.MYSQL,
                  configuration=db_conf, folder=folder, text_recording=True)
    RecordFactory(name="charlie", record_type=RecordType.REMOTE_BROWSING)
    client = client_for(superuser)

    def names(query: str) -> list[str]:
        response = client.get(f"{RECORDS}?{query}")
        assert response.status_code == 200, response.json()
        return [row["name"] for row in response.json()["results"]]

    assert names("record_type=pamDatabase") == ["bravo"]
    assert names("protocol=ssh") == ["alpha"]
    assert names(f"configuration={db_conf.pk}") == ["bravo"]
    assert names(f"folder={folder.pk}") == ["bravo"]
    assert names("in_folder=false") == ["alpha", "charlie"]
    assert names("graphical_recording=true") == ["alpha"]
    assert names("text_recording=true") == ["bravo"]
    assert names("search=alpha.corp") == ["alpha"]
    assert names("search=intranet.example") == ["charlie"]
    assert names("ordering=-name") == ["charlie", "bravo", "alpha"]
    assert names("ordering=record_type")[0] == "bravo"
    assert names("page_size=2") == ["alpha", "bravo"]
    assert client.get(f"{RECORDS}?record_type=bogus").status_code == 400


def test_can_view_recordings_filter():
    auditor = user_with(can_view_recordings=True)
    machine = RecordFactory(name="machine")
    browser = RecordFactory(name="browser", record_type=RecordType.REMOTE_BROWSING)
    share(machine, auditor)
    share(browser, auditor)
    client = client_for(auditor)
    yes = client.get(f"{RECORDS}?can_view_recordings=true").json()
    assert [row["name"] for row in yes["results"]] == ["machine"]
    assert yes["results"][0]["permissions"]["can_view_recordings"] is True
    no = client.get(f"{RECORDS}?can_view_recordings=false").json()
    assert [row["name"] for row in no["results"]] == ["browser"]


def test_page_size_is_capped(superuser):
    RecordFactory.create_batch(3)
    body = client_for(superuser).get(f"{RECORDS}?page_size=1000").json()
    assert body["count"] == 3
    assert len(body["results"]) == 3


# ---------------------------------------------------------- revocation is immediate


def test_revoking_folder_membership_hides_the_record_on_the_next_call():
    user = UserFactory()
    folder = SharedFolderFactory()
    record = RecordFactory(folder=folder)
    membership = services.folder_member_set(folder=folder, user=user, access=AccessLevel.VIEW,
                                            acting_user=None)
    client = client_for(user)
    assert client.get(RECORDS).json()["count"] == 1
    assert client.get(f"{RECORDS}{record.pk}/").status_code == 200

    services.folder_member_remove(membership=membership, acting_user=None)
    assert client.get(RECORDS).json()["count"] == 0
    assert client.get(f"{RECORDS}{record.pk}/").status_code == 404


def test_revoking_a_group_membership_hides_the_record():
    user = UserFactory()
    group = GroupFactory()
    user.groups.add(group)
    folder = SharedFolderFactory()
    RecordFactory(folder=folder)
    services.folder_member_set(folder=folder, group=group, access=AccessLevel.VIEW,
                               acting_user=None)
    client = client_for(user)
    assert client.get(RECORDS).json()["count"] == 1
    user.groups.remove(group)
    assert client.get(RECORDS).json()["count"] == 0


def test_revoking_the_role_turns_can_view_recordings_off_on_the_next_call():
    auditor = UserFactory()
    role = role_create(acting_user=None, name="Auditors", users=[auditor],
                       can_view_recordings=True)
    record = RecordFactory()
    share(record, auditor)
    client = client_for(auditor)
    row = client.get(f"{RECORDS}{record.pk}/").json()
    assert row["permissions"]["can_view_recordings"] is True
    assert client.get(f"{RECORDS}?can_view_recordings=true").json()["count"] == 1

    role_update(role=role, acting_user=None, users=[])
    row = client.get(f"{RECORDS}{record.pk}/").json()
    assert row["permissions"]["can_view_recordings"] is False
    assert client.get(f"{RECORDS}?can_view_recordings=true").json()["count"] == 0


# ---------------------------------------------------------- effective recording


def _expected_effective(protocol, allow_g, allow_t, enable_g, enable_t) -> tuple[bool, bool]:
    # Stated independently of vault.protocols: every protocol records graphically,
    # only terminal protocols record text.
    return allow_g and enable_g, allow_t and enable_t and protocol in TEXT_PROTOCOLS


EFFECTIVE_CASES = [
    (record_type, protocol, *flags)
    for record_type, protocol in [
        (RecordType.MACHINE, Protocol.SSH),
        (RecordType.MACHINE, Protocol.RDP),
        (RecordType.MACHINE, Protocol.VNC),
        (RecordType.DATABASE, Protocol.POSTGRESQL),
        (RecordType.REMOTE_BROWSING, Protocol.RBI),
    ]
    for flags in itertools.product([True, False], repeat=4)
]


@pytest.mark.parametrize(
    ("record_type", "protocol", "allow_g", "allow_t", "enable_g", "enable_t"), EFFECTIVE_CASES
)
def test_effective_recording_follows_the_rule(record_type, protocol, allow_g, allow_t,
                                              enable_g, enable_t):
    user = UserFactory()
    configuration = PamConfigurationFactory(allow_graphical_recording=allow_g,
                                            allow_text_recording=allow_t)
    # Built without clean(): a stored record asking for text on a graphical protocol
    # must still come out as "no text".
    record = RecordFactory(record_type=record_type, protocol=protocol,
                           configuration=configuration, graphical_recording=enable_g,
                           text_recording=enable_t)
    share(record, user)
    response = client_for(user).get(f"{RECORDS}{record.pk}/effective-recording/")
    assert response.status_code == 200
    body = response.json()
    graphical, text = _expected_effective(protocol, allow_g, allow_t, enable_g, enable_t)
    assert (body["graphical"], body["text"]) == (graphical, text)
    assert body["protocol"] == protocol
    assert body["protocol_supports"] == {"graphical": True,
                                         "text": protocol in TEXT_PROTOCOLS}
    assert body["configuration"] == {
        "id": configuration.pk, "name": configuration.name,
        "allow_graphical_recording": allow_g, "allow_text_recording": allow_t,
    }
    assert body["record"] == {"graphical_recording": enable_g, "text_recording": enable_t}
    assert body["graphical_reason"]
    assert body["text_reason"]
    if protocol not in TEXT_PROTOCOLS:
        assert "protocol" in body["text_reason"]
    elif not allow_t:
        assert "configuration" in body["text_reason"]


def test_effective_recording_of_a_hidden_record_is_404():
    record = RecordFactory()
    response = client_for(UserFactory()).get(f"{RECORDS}{record.pk}/effective-recording/")
    assert response.status_code == 404


# ------------------------------------------------------------------------- shares


def test_shares_list_grant_change_and_revoke():
    owner, viewer, newcomer = UserFactory(), UserFactory(), UserFactory()
    record = RecordFactory()
    share(record, owner, AccessLevel.SHARE)
    share(record, viewer, AccessLevel.VIEW)
    url = f"{RECORDS}{record.pk}/shares/"

    listed = client_for(viewer).get(url)
    assert listed.status_code == 200
    assert {row["user"] for row in listed.json()["results"]} == {owner.pk, viewer.pk}

    denied = client_for(viewer).post(url, {"user": newcomer.pk, "access": "view"})
    assert denied.status_code == 403
    assert "share" in denied.json()["detail"]

    owner_client = client_for(owner)
    granted = owner_client.post(url, {"user": newcomer.pk, "access": "view"})
    assert granted.status_code == 201
    assert granted.json()["username"] == newcomer.username
    assert granted.json()["granted_by"] == owner.pk
    assert client_for(newcomer).get(f"{RECORDS}{record.pk}/").status_code == 200

    changed = owner_client.post(url, {"user": newcomer.pk, "access": "edit"})
    assert changed.status_code == 200
    assert changed.json()["access"] == "edit"

    assert client_for(viewer).delete(f"{url}{newcomer.pk}/").status_code == 403
    assert owner_client.delete(f"{url}{newcomer.pk}/").status_code == 204
    assert client_for(newcomer).get(f"{RECORDS}{record.pk}/").status_code == 404
    assert owner_client.delete(f"{url}{newcomer.pk}/").status_code == 404


def test_shares_of_a_hidden_record_are_404():
    record = RecordFactory()
    stranger, other = UserFactory(), UserFactory()
    url = f"{RECORDS}{record.pk}/shares/"
    client = client_for(stranger)
    assert client.get(url).status_code == 404
    assert client.post(url, {"user": other.pk, "access": "view"}).status_code == 404
    assert client.delete(f"{url}{other.pk}/").status_code == 404


def test_share_grant_validates_its_input():
    owner = UserFactory()
    record = RecordFactory()
    share(record, owner, AccessLevel.SHARE)
    response = client_for(owner).post(f"{RECORDS}{record.pk}/shares/",
                                      {"user": 999999, "access": "admin"})
    assert response.status_code == 400
    assert {"user", "access"} <= set(response.json()["errors"])


# ---------------------------------------------------------------- configurations


def test_configurations_visible_to_record_viewers_only_through_their_records():
    viewer = UserFactory()
    used = PamConfigurationFactory(name="used")
    PamConfigurationFactory(name="unused")
    mine = RecordFactory(configuration=used)
    RecordFactory(configuration=used)  # not visible to the viewer
    share(mine, viewer)
    client = client_for(viewer)
    body = client.get(CONFIGURATIONS).json()
    assert [(row["name"], row["record_count"]) for row in body["results"]] == [("used", 1)]
    unused = PamConfiguration.objects.get(name="unused")
    assert client.get(f"{CONFIGURATIONS}{unused.pk}/").status_code == 404
    assert client.patch(f"{CONFIGURATIONS}{used.pk}/", {"name": "x"}).status_code == 403
    assert client.patch(f"{CONFIGURATIONS}{unused.pk}/", {"name": "x"}).status_code == 404
    assert client.post(CONFIGURATIONS, {"name": "new"}).status_code == 403


def test_configuration_crud_by_a_configurer(configurer):
    client = client_for(configurer)
    created = client.post(CONFIGURATIONS, {"name": "Lab", "environment": "aws",
                                           "allow_text_recording": False})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["record_count"] == 0
    assert body["allow_text_recording"] is False
    pk = body["id"]

    duplicate = client.post(CONFIGURATIONS, {"name": "Lab"})
    assert duplicate.status_code == 400
    assert "name" in duplicate.json()["errors"]

    patched = client.patch(f"{CONFIGURATIONS}{pk}/", {"allow_graphical_recording": False})
    assert patched.status_code == 200
    assert patched.json()["allow_graphical_recording"] is False

    in_use = RecordFactory(configuration_id=pk)
    refused = client.delete(f"{CONFIGURATIONS}{pk}/")
    assert refused.status_code == 400
    assert "move them" in refused.json()["detail"]
    in_use.delete()
    assert client.delete(f"{CONFIGURATIONS}{pk}/").status_code == 204
    assert not PamConfiguration.objects.filter(pk=pk).exists()


def test_configuration_filters(configurer):
    PamConfigurationFactory(name="a", environment="aws", allow_text_recording=False)
    PamConfigurationFactory(name="b")
    client = client_for(configurer)
    rows = client.get(f"{CONFIGURATIONS}?environment=aws").json()["results"]
    assert [row["name"] for row in rows] == ["a"]
    rows = client.get(f"{CONFIGURATIONS}?allow_text_recording=true").json()["results"]
    assert [row["name"] for row in rows] == ["b"]


# ------------------------------------------------------------------------ folders


def test_folders_visible_to_members_with_counts(superuser):
    member, manager, outsider = UserFactory(), UserFactory(), UserFactory()
    group = GroupFactory()
    member.groups.add(group)
    folder = SharedFolderFactory(name="ops")
    SharedFolderFactory(name="other")
    RecordFactory.create_batch(2, folder=folder)
    services.folder_member_set(folder=folder, group=group, access=AccessLevel.VIEW,
                               acting_user=None)
    services.folder_member_set(folder=folder, user=manager, access=AccessLevel.SHARE,
                               acting_user=None)

    rows = client_for(member).get(FOLDERS).json()["results"]
    assert rows == [{**rows[0], "name": "ops", "record_count": 2, "member_count": 2,
                     "can_manage": False}]
    rows = client_for(manager).get(FOLDERS).json()["results"]
    assert [(r["name"], r["can_manage"]) for r in rows] == [("ops", True)]
    assert client_for(outsider).get(FOLDERS).json()["count"] == 0
    assert client_for(outsider).get(f"{FOLDERS}{folder.pk}/").status_code == 404
    assert client_for(superuser).get(FOLDERS).json()["count"] == 2
    assert client_for(manager).get(f"{FOLDERS}?can_manage=true").json()["count"] == 1


def test_folder_create_is_for_superusers(superuser):
    assert client_for(UserFactory()).post(FOLDERS, {"name": "x"}).status_code == 403
    created = client_for(superuser).post(FOLDERS, {"name": "Ops", "description": "d"})
    assert created.status_code == 201
    assert created.json()["can_manage"] is True
    assert SharedFolder.objects.filter(name="Ops").exists()


def test_folder_change_needs_share_access():
    viewer, manager = UserFactory(), UserFactory()
    folder = SharedFolderFactory()
    services.folder_member_set(folder=folder, user=viewer, access=AccessLevel.EDIT,
                               acting_user=None)
    services.folder_member_set(folder=folder, user=manager, access=AccessLevel.SHARE,
                               acting_user=None)
    url = f"{FOLDERS}{folder.pk}/"
    refused = client_for(viewer).patch(url, {"name": "renamed"})
    assert refused.status_code == 403
    assert "share access" in refused.json()["detail"]
    assert client_for(viewer).delete(url).status_code == 403
    renamed = client_for(manager).patch(url, {"name": "renamed"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "renamed"
    assert client_for(manager).delete(url).status_code == 204
    assert not SharedFolder.objects.filter(pk=folder.pk).exists()


def test_folder_members_list_set_and_remove():
    viewer, manager, newcomer = UserFactory(), UserFactory(), UserFactory()
    group = GroupFactory()
    folder = SharedFolderFactory()
    record = RecordFactory(folder=folder)
    services.folder_member_set(folder=folder, user=viewer, access=AccessLevel.VIEW,
                               acting_user=None)
    services.folder_member_set(folder=folder, user=manager, access=AccessLevel.SHARE,
                               acting_user=None)
    url = f"{FOLDERS}{folder.pk}/members/"

    listed = client_for(viewer).get(url)
    assert listed.status_code == 200
    assert {row["username"] for row in listed.json()["results"]} == {viewer.username,
                                                                     manager.username}
    assert client_for(viewer).post(url, {"user": newcomer.pk,
                                         "access": "view"}).status_code == 403

    client = client_for(manager)
    added = client.post(url, {"user": newcomer.pk, "access": "view"})
    assert added.status_code == 201
    membership_id = added.json()["id"]
    assert client_for(newcomer).get(f"{RECORDS}{record.pk}/").status_code == 200
    changed = client.post(url, {"user": newcomer.pk, "access": "edit"})
    assert changed.status_code == 200
    assert changed.json()["id"] == membership_id
    assert client.post(url, {"group": group.pk, "access": "view"}).status_code == 201

    both = client.post(url, {"user": newcomer.pk, "group": group.pk, "access": "view"})
    assert both.status_code == 400
    assert "non_field_errors" in both.json()["errors"]
    assert client.post(url, {"access": "view"}).status_code == 400

    assert client_for(viewer).delete(f"{url}{membership_id}/").status_code == 403
    assert client.delete(f"{url}{membership_id}/").status_code == 204
    assert not FolderMembership.objects.filter(pk=membership_id).exists()
    assert client_for(newcomer).get(f"{RECORDS}{record.pk}/").status_code == 404


def test_members_of_a_hidden_folder_are_404():
    folder = SharedFolderFactory()
    other_folder = SharedFolderFactory()
    manager = UserFactory()
    services.folder_member_set(folder=other_folder, user=manager, access=AccessLevel.SHARE,
                               acting_user=None)
    foreign = services.folder_member_set(folder=folder, user=UserFactory(),
                                         access=AccessLevel.VIEW, acting_user=None)
    client = client_for(manager)
    assert client.get(f"{FOLDERS}{folder.pk}/members/").status_code == 404
    # A membership of another folder is not reachable through one's own folder either.
    assert client.delete(
        f"{FOLDERS}{other_folder.pk}/members/{foreign.pk}/"
    ).status_code == 404


# ------------------------------------------------------- constant query counts


def _queries_for(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_record_list_query_count_is_constant(django_assert_num_queries):
    user = user_with(can_configure_connections=True, can_view_recordings=True)
    folder = SharedFolderFactory()
    RecordFactory(folder=folder)
    membership = services.folder_member_set(folder=folder, user=user, access=AccessLevel.EDIT,
                                            acting_user=None)
    client = client_for(user)
    url = f"{RECORDS}?page_size=200"
    one = _queries_for(client, url)

    RecordFactory.create_batch(99, folder=folder, configuration=PamConfigurationFactory())
    services.folder_member_set(folder=folder, user=user, access=membership.access,
                               acting_user=None)
    with django_assert_num_queries(one):
        response = client.get(url)
    body = response.json()
    assert body["count"] == 100
    assert all(row["permissions"]["can_configure"] for row in body["results"])
    assert all(row["permissions"]["can_view_recordings"] for row in body["results"])


def test_configuration_list_query_count_is_constant(django_assert_num_queries):
    viewer = UserFactory()
    share(RecordFactory(), viewer)
    client = client_for(viewer)
    url = f"{CONFIGURATIONS}?page_size=200"
    one = _queries_for(client, url)
    for _ in range(99):
        share(RecordFactory(), viewer)
    with django_assert_num_queries(one):
        response = client.get(url)
    assert response.json()["count"] == 100


def test_folder_list_query_count_is_constant(django_assert_num_queries):
    user = UserFactory()

    def add_folder() -> None:
        folder = SharedFolderFactory()
        RecordFactory(folder=folder)
        services.folder_member_set(folder=folder, user=user, access=AccessLevel.SHARE,
                                   acting_user=None)

    add_folder()
    client = client_for(user)
    url = f"{FOLDERS}?page_size=200"
    one = _queries_for(client, url)
    for _ in range(99):
        add_folder()
    with django_assert_num_queries(one):
        response = client.get(url)
    body = response.json()
    assert body["count"] == 100
    assert all(row["can_manage"] and row["record_count"] == 1 for row in body["results"])
