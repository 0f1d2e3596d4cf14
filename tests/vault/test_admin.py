"""The admin console for the vault: the protocol matrix, the policies, services and audit."""

from __future__ import annotations

import itertools
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from policies.services import role_create
from tests.factories import (
    PamConfigurationFactory,
    RecordFactory,
    SharedFolderFactory,
    UserFactory,
)
from vault import services
from vault.choices import AccessLevel, AuditAction, Protocol, RecordType
from vault.models import AuditEvent, FolderMembership, PamConfiguration, Record, RecordShare
from vault.protocols import (
    PROTOCOLS_BY_RECORD_TYPE,
    supports_text_recording,
    text_recording_unavailable_reason,
)

pytestmark = pytest.mark.django_db

RECORDS = "/admin/vault/record/"
CONFIGURATIONS = "/admin/vault/pamconfiguration/"
FOLDERS = "/admin/vault/sharedfolder/"
AUDIT = "/admin/vault/auditevent/"


# --------------------------------------------------------------------------- helpers


def form_data(response) -> dict:
    """POST data reproducing a rendered admin add/change form, inlines included."""
    data: dict = {}

    def put(form) -> None:
        for name in form.fields:
            bound = form[name]
            value = bound.value()
            key = bound.html_name
            if isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif value is not None:
                data[key] = str(value)

    put(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        put(formset.management_form)
        for form in formset.forms:
            put(form)
    return data


def record_fields(**overrides) -> dict:
    """A valid add-form submission for a machine record."""
    configuration = overrides.pop("configuration", None) or PamConfigurationFactory()
    data = {
        "name": "web-01",
        "record_type": RecordType.MACHINE,
        "protocol": Protocol.SSH,
        "host": "web-01.internal",
        "port": "22",
        "url": "",
        "configuration": str(configuration.pk),
        "folder": "",
        "notes": "",
        "graphical_recording": "on",
        "text_recording": "on",
        "shares-TOTAL_FORMS": "0",
        "shares-INITIAL_FORMS": "0",
        "shares-MIN_NUM_FORMS": "0",
        "shares-MAX_NUM_FORMS": "1000",
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def form_errors(response) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in
            response.context["adminform"].form.errors.items()}


def staff(*, connections: bool = False, remote_browsing: bool = False, **policies):
    """A staff user holding (through one role) the named enforcement policies."""
    user = UserFactory(is_staff=True)
    flags = {
        "can_configure_connections": connections,
        "can_configure_remote_browsing": remote_browsing,
        **policies,
    }
    if any(flags.values()):
        role_create(acting_user=None, name=f"Role of {user.username}", users=[user], **flags)
    return user


def share(record: Record, user, access: str = AccessLevel.EDIT) -> None:
    services.record_share_grant(record=record, user=user, access=access, acting_user=None)


def input_tag(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, f"no input named {name}"
    return match.group(0)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The factories set a password on every user; the production hasher would
    # spend most of this module's time on them.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


# ------------------------------------------------------------------ protocol matrix

FORBIDDEN_PROTOCOLS = [
    (record_type, protocol)
    for record_type, protocol in itertools.product(RecordType.values, Protocol.values)
    if protocol not in PROTOCOLS_BY_RECORD_TYPE[record_type]
]
TEXTLESS = [
    (record_type, protocol)
    for record_type, allowed in PROTOCOLS_BY_RECORD_TYPE.items()
    for protocol in allowed
    if not supports_text_recording(protocol)
]


def target_fields(record_type: str) -> dict:
    if record_type == RecordType.REMOTE_BROWSING:
        return {"host": "", "port": "", "url": "https://intranet.example.test/"}
    return {"host": "db.internal", "url": ""}


@pytest.mark.parametrize(("record_type", "protocol"), FORBIDDEN_PROTOCOLS)
def test_wrong_protocol_for_type_is_refused_on_the_protocol_field(
    client, superuser, record_type, protocol
):
    response = client.post(
        f"{RECORDS}add/",
        record_fields(record_type=record_type, protocol=protocol, text_recording=None,
                      **target_fields(record_type)),
    )
    assert response.status_code == 200
    errors = form_errors(response)
    allowed = ", ".join(Protocol(p).label for p in PROTOCOLS_BY_RECORD_TYPE[record_type])
    assert errors["protocol"] == [
        f"{RecordType(record_type).label} records take {allowed}, not {Protocol(protocol).label}."
    ]
    assert not Record.objects.exists()


@pytest.mark.parametrize(("record_type", "protocol"), TEXTLESS)
def test_text_recording_on_a_graphical_protocol_is_refused_on_the_text_field(
    client, superuser, record_type, protocol
):
    response = client.post(
        f"{RECORDS}add/",
        record_fields(record_type=record_type, protocol=protocol, **target_fields(record_type)),
    )
    assert response.status_code == 200
    assert form_errors(response) == {
        "text_recording": [text_recording_unavailable_reason(protocol)]
    }
    assert not Record.objects.exists()


@pytest.mark.parametrize(
    ("record_type", "protocol", "missing", "message"),
    [
        (RecordType.MACHINE, Protocol.SSH, "host", "This record needs the host to connect to."),
        (RecordType.DATABASE, Protocol.MYSQL, "host", "This record needs the host to connect to."),
        (RecordType.DIRECTORY, Protocol.RDP, "host", "This record needs the host to connect to."),
        (RecordType.REMOTE_BROWSING, Protocol.RBI, "url",
         "Remote browsing records need the URL to open."),
    ],
)
def test_missing_target_is_refused_on_its_field(
    client, superuser, record_type, protocol, missing, message
):
    response = client.post(
        f"{RECORDS}add/",
        record_fields(record_type=record_type, protocol=protocol, text_recording=None,
                      host="", url="", port=""),
    )
    assert form_errors(response) == {missing: [message]}


def test_superuser_adds_a_record_through_the_service(client, superuser):
    response = client.post(f"{RECORDS}add/", record_fields())
    assert response.status_code == 302, form_errors(response)
    record = Record.objects.get()
    assert (record.host, record.port, record.text_recording) == ("web-01.internal", 22, True)
    assert record.created_by == superuser
    # record_create: one audited creation and a full share for the creator.
    event = AuditEvent.objects.get(object_type="vault.record")
    assert (event.action, event.actor) == (AuditAction.CREATE, superuser)
    assert RecordShare.objects.get(record=record).user == superuser


def test_record_change_writes_one_audit_row_with_before_and_after(client, superuser):
    record = RecordFactory(host="old.internal")
    page = client.get(f"{RECORDS}{record.pk}/change/")
    data = form_data(page)
    data["host"] = "new.internal"
    response = client.post(f"{RECORDS}{record.pk}/change/", data)
    assert response.status_code == 302, form_errors(response)
    event = AuditEvent.objects.get(object_type="vault.record")
    assert event.action == AuditAction.UPDATE
    assert (event.before, event.after) == ({"host": "old.internal"}, {"host": "new.internal"})


# --------------------------------------------------------------------- the pages


def test_rdp_change_page_disables_text_toggle_and_says_why(client, superuser):
    record = RecordFactory(record_type=RecordType.MACHINE, protocol=Protocol.RDP)
    response = client.get(f"{RECORDS}{record.pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "disabled" in input_tag(html, "text_recording")
    assert "disabled" not in input_tag(html, "graphical_recording")
    reason = text_recording_unavailable_reason(Protocol.RDP)
    assert f'<div>{reason}</div>' in html.replace("\n", "")
    assert "PAM Settings" in html
    assert "The protocol does not support text recording." in html  # effective recording


def test_ssh_change_page_offers_text_toggle(client, superuser):
    record = RecordFactory(record_type=RecordType.MACHINE, protocol=Protocol.SSH,
                           graphical_recording=True)
    html = client.get(f"{RECORDS}{record.pk}/change/").content.decode()
    assert "disabled" not in input_tag(html, "text_recording")
    assert "Graphical recording is on." in html
    assert "Text recording is switched off on this record." in html


def test_add_page_renders_with_fieldsets_and_the_toggle_script(client, superuser):
    response = client.get(f"{RECORDS}add/")
    html = response.content.decode()
    titles = [name for name, _ in response.context["adminform"].fieldsets]
    assert titles == ["Record", "Connection", "PAM Settings"]
    for title in titles:
        assert f'class="fieldset-heading">{title}</h2>' in html
    assert "Shown once the record is saved." in html
    assert "vault/admin/record_form.js" in html
    assert "disabled" not in input_tag(html, "text_recording")


def test_unknown_or_invisible_record_answers_does_not_exist(client):
    user = staff(connections=True)
    client.force_login(user)
    record = RecordFactory()
    response = client.get(f"{RECORDS}{record.pk}/change/")
    assert response.status_code == 302
    assert response.url == "/admin/"


# -------------------------------------------------------------------- the policies


def test_staff_without_configure_policy_views_shared_record_read_only(client):
    user = staff()
    client.force_login(user)
    record = RecordFactory(record_type=RecordType.MACHINE, host="keep.internal")
    share(record, user, AccessLevel.EDIT)

    index = client.get("/admin/")
    assert index.status_code == 200
    assert RECORDS in index.content.decode()

    page = client.get(f"{RECORDS}{record.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html
    assert "keep.internal" in html

    data = record_fields(host="changed.internal")
    assert client.post(f"{RECORDS}{record.pk}/change/", data).status_code == 403
    record.refresh_from_db()
    assert record.host == "keep.internal"

    assert client.get(f"{RECORDS}add/").status_code == 403
    assert client.post(f"{RECORDS}add/", record_fields()).status_code == 403
    assert client.post(f"{RECORDS}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Record.objects.filter(pk=record.pk).exists()


def test_configure_connections_changes_machine_records_it_may_edit_but_not_rbi(client):
    user = staff(connections=True)
    client.force_login(user)
    machine = RecordFactory(record_type=RecordType.MACHINE, host="old.internal")
    browser = RecordFactory(record_type=RecordType.REMOTE_BROWSING)
    view_only = RecordFactory(record_type=RecordType.MACHINE)
    share(machine, user, AccessLevel.EDIT)
    share(browser, user, AccessLevel.EDIT)
    share(view_only, user, AccessLevel.VIEW)

    data = form_data(client.get(f"{RECORDS}{machine.pk}/change/"))
    data["host"] = "new.internal"
    response = client.post(f"{RECORDS}{machine.pk}/change/", data)
    assert response.status_code == 302, form_errors(response)
    machine.refresh_from_db()
    assert machine.host == "new.internal"

    page = client.get(f"{RECORDS}{browser.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    post = record_fields(record_type=RecordType.REMOTE_BROWSING, protocol=Protocol.RBI,
                         text_recording=None, host="", url="https://changed.example.test/")
    assert client.post(f"{RECORDS}{browser.pk}/change/", post).status_code == 403

    # The configure policy alone is not enough: changing needs edit access too.
    assert client.post(f"{RECORDS}{view_only.pk}/change/", record_fields()).status_code == 403


def test_add_form_offers_only_configurable_record_types(client):
    client.force_login(staff(connections=True))
    response = client.get(f"{RECORDS}add/")
    choices = [value for value, _ in response.context["adminform"].form.fields[
        "record_type"].choices]
    assert choices == ["", RecordType.MACHINE, RecordType.DATABASE, RecordType.DIRECTORY]

    refused = client.post(
        f"{RECORDS}add/",
        record_fields(record_type=RecordType.REMOTE_BROWSING, protocol=Protocol.RBI,
                      text_recording=None, host="", url="https://x.example.test/"),
    )
    assert "record_type" in form_errors(refused)
    assert not Record.objects.exists()

    created = client.post(f"{RECORDS}add/", record_fields())
    assert created.status_code == 302, form_errors(created)
    assert Record.objects.get().record_type == RecordType.MACHINE


def test_remote_browsing_policy_alone_adds_only_rbi_records(client):
    user = staff(remote_browsing=True)
    client.force_login(user)
    response = client.get(f"{RECORDS}add/")
    choices = [v for v, _ in response.context["adminform"].form.fields["record_type"].choices]
    assert choices == ["", RecordType.REMOTE_BROWSING]


def test_pam_configuration_changes_need_configure_connections(client):
    configuration = PamConfigurationFactory(allow_text_recording=True)
    record = RecordFactory(configuration=configuration)
    reader = staff(remote_browsing=True)
    share(record, reader, AccessLevel.EDIT)
    client.force_login(reader)

    page = client.get(f"{CONFIGURATIONS}{configuration.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    data = {"name": configuration.name, "environment": "local", "connections_enabled": "on"}
    assert client.post(f"{CONFIGURATIONS}{configuration.pk}/change/", data).status_code == 403
    assert client.get(f"{CONFIGURATIONS}add/").status_code == 403
    configuration.refresh_from_db()
    assert configuration.allow_text_recording is True

    client.force_login(staff(connections=True))
    response = client.post(f"{CONFIGURATIONS}{configuration.pk}/change/", data)
    assert response.status_code == 302
    configuration.refresh_from_db()
    assert configuration.allow_text_recording is False
    event = AuditEvent.objects.get(object_type="vault.pamconfiguration")
    assert event.before["allow_text_recording"] is True
    assert event.after["allow_text_recording"] is False


def test_staff_without_policies_sees_only_configurations_of_their_records(client):
    user = staff()
    record = RecordFactory()
    share(record, user, AccessLevel.VIEW)
    unused = PamConfigurationFactory()
    client.force_login(user)
    listed = client.get(CONFIGURATIONS).context["cl"].result_list
    assert [c.pk for c in listed] == [record.configuration_id]
    assert client.get(f"{CONFIGURATIONS}{unused.pk}/change/").status_code == 302


def test_pam_configuration_page_has_gateway_and_recording_fieldsets(client, superuser):
    PamConfigurationFactory(name="Datacenter")
    html = client.get(f"{CONFIGURATIONS}add/").content.decode()
    assert 'class="fieldset-heading">Gateway</h2>' in html
    assert 'class="fieldset-heading">Session recording</h2>' in html
    changelist = client.get(CONFIGURATIONS)
    assert changelist.status_code == 200
    assert "Datacenter" in changelist.content.decode()


def test_pam_configuration_add_and_delete_go_through_services(client, superuser):
    response = client.post(
        f"{CONFIGURATIONS}add/",
        {"name": "Lab", "environment": "aws", "network_cidr": "10.0.0.0/16",
         "connections_enabled": "on", "allow_graphical_recording": "on"},
    )
    assert response.status_code == 302
    configuration = PamConfiguration.objects.get(name="Lab")
    response = client.post(f"{CONFIGURATIONS}{configuration.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not PamConfiguration.objects.filter(pk=configuration.pk).exists()
    assert list(
        AuditEvent.objects.filter(object_type="vault.pamconfiguration")
        .order_by("id").values_list("action", flat=True)
    ) == [AuditAction.CREATE, AuditAction.DELETE]


def test_staff_without_policies_sees_records_but_no_configuration_admin_actions(client):
    client.force_login(staff())
    index = client.get("/admin/").content.decode()
    assert RECORDS in index
    assert f'href="{RECORDS}add/"' not in index
    assert AUDIT not in index
    assert "/admin/policies/role/" not in index


def test_staff_with_configure_policy_sees_the_vault_app(client):
    client.force_login(staff(connections=True))
    index = client.get("/admin/").content.decode()
    assert f'href="{RECORDS}add/"' in index
    assert f'href="{CONFIGURATIONS}add/"' in index


# ------------------------------------------------------------- shares and deletes


def test_direct_shares_inline_goes_through_share_services(client, superuser):
    record = RecordFactory()
    alice, bob = UserFactory(), UserFactory()
    share(record, alice, AccessLevel.VIEW)
    AuditEvent.objects.all().delete()

    data = form_data(client.get(f"{RECORDS}{record.pk}/change/"))
    assert data["shares-TOTAL_FORMS"] == "1"
    data["shares-0-DELETE"] = "on"
    data.update({"shares-TOTAL_FORMS": "2", "shares-1-user": str(bob.pk),
                 "shares-1-access": AccessLevel.EDIT, "shares-1-record": str(record.pk)})
    response = client.post(f"{RECORDS}{record.pk}/change/", data)
    assert response.status_code == 302, response.context and form_errors(response)

    assert list(RecordShare.objects.filter(record=record).values_list("user", "access")) == [
        (bob.pk, AccessLevel.EDIT)
    ]
    assert list(Record.objects.restrict(bob, "change")) == [record]
    assert not Record.objects.restrict(alice, "view").exists()
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == [
        AuditAction.GRANT, AuditAction.REVOKE
    ]


def test_bulk_delete_goes_through_the_service(client, superuser):
    records = RecordFactory.create_batch(3)
    response = client.post(
        RECORDS,
        {"action": "delete_selected", "post": "yes",
         "_selected_action": [str(r.pk) for r in records]},
    )
    assert response.status_code == 302
    assert not Record.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.DELETE,
                                     object_type="vault.record").count() == 3


def test_bulk_delete_refuses_records_the_user_may_not_configure(client):
    user = staff(connections=True)
    client.force_login(user)
    mine, not_mine = RecordFactory(), RecordFactory()
    share(mine, user, AccessLevel.EDIT)
    share(not_mine, user, AccessLevel.VIEW)
    response = client.post(
        RECORDS,
        {"action": "delete_selected", "post": "yes",
         "_selected_action": [str(mine.pk), str(not_mine.pk)]},
    )
    # The action checks every selected record and refuses the lot.
    assert response.status_code == 403
    assert Record.objects.count() == 2


# ------------------------------------------------------------------------- folders


def test_folder_members_inline_goes_through_folder_services(client, superuser):
    folder = SharedFolderFactory()
    record = RecordFactory(folder=folder)
    reader = UserFactory()
    group = reader.groups.create(name="Operators")

    data = form_data(client.get(f"{FOLDERS}{folder.pk}/change/"))
    data.update({
        "memberships-TOTAL_FORMS": "2",
        "memberships-0-user": str(reader.pk), "memberships-0-access": AccessLevel.VIEW,
        "memberships-1-group": str(group.pk), "memberships-1-access": AccessLevel.EDIT,
    })
    response = client.post(f"{FOLDERS}{folder.pk}/change/", data)
    assert response.status_code == 302, form_errors(response)
    assert FolderMembership.objects.filter(folder=folder).count() == 2
    assert list(Record.objects.restrict(reader, "change")) == [record]
    assert AuditEvent.objects.filter(action=AuditAction.GRANT).count() == 2

    changelist = client.get(FOLDERS).content.decode()
    assert folder.name in changelist


def test_folder_member_xor_is_refused(client, superuser):
    folder = SharedFolderFactory()
    reader = UserFactory()
    group = reader.groups.create(name="Operators")
    data = form_data(client.get(f"{FOLDERS}{folder.pk}/change/"))
    data.update({"memberships-TOTAL_FORMS": "1", "memberships-0-user": str(reader.pk),
                 "memberships-0-group": str(group.pk),
                 "memberships-0-access": AccessLevel.VIEW})
    response = client.post(f"{FOLDERS}{folder.pk}/change/", data)
    assert response.status_code == 200
    assert "either a user or a group" in response.content.decode()
    assert not FolderMembership.objects.exists()


def test_folders_are_read_only_for_view_members(client):
    user = staff(connections=True)
    folder = SharedFolderFactory()
    other = SharedFolderFactory()
    services.folder_member_set(folder=folder, user=user, access=AccessLevel.VIEW,
                               acting_user=None)
    client.force_login(user)
    changelist = client.get(FOLDERS)
    assert [f.pk for f in changelist.context["cl"].result_list] == [folder.pk]
    assert changelist.context["cl"].result_list[0].member_count == 1
    assert client.get(f"{FOLDERS}{other.pk}/change/").status_code == 302
    assert client.post(f"{FOLDERS}{folder.pk}/change/", {"name": "x"}).status_code == 403


def test_share_members_manage_their_folder_as_in_the_api(client):
    user = staff()
    folder = SharedFolderFactory(name="Production")
    services.folder_member_set(folder=folder, user=user, access=AccessLevel.SHARE,
                               acting_user=None)
    client.force_login(user)
    page = client.get(f"{FOLDERS}{folder.pk}/change/")
    assert page.status_code == 200
    assert page.context["has_change_permission"] is True
    assert client.get(f"{FOLDERS}add/").status_code == 403
    assert client.post(f"{FOLDERS}{folder.pk}/delete/", {"post": "yes"}).status_code == 403


# ---------------------------------------------------------------------------- audit


def test_audit_admin_is_read_only(client, superuser):
    record = services.record_create(
        acting_user=superuser, name="db", record_type=RecordType.DATABASE,
        protocol=Protocol.MYSQL, host="db.internal", configuration=PamConfigurationFactory(),
    )
    event = AuditEvent.objects.get(object_id=str(record.pk), object_type="vault.record")

    changelist = client.get(AUDIT)
    assert changelist.status_code == 200
    assert f'href="{AUDIT}add/"' not in changelist.content.decode()
    assert client.get(f"{AUDIT}add/").status_code == 403

    page = client.get(f"{AUDIT}{event.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html
    assert "<pre" in html
    assert "&quot;protocol&quot;: &quot;mysql&quot;" in html

    assert client.post(f"{AUDIT}{event.pk}/change/", {"action": "forged"}).status_code == 403
    assert client.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.action == AuditAction.CREATE


def test_audit_admin_is_for_superusers_only(client):
    client.force_login(staff(connections=True))
    assert client.get(AUDIT).status_code == 403


# -------------------------------------------------------------------- query counts


def _changelist_queries(client, count: int, user) -> tuple[int, object]:
    records = RecordFactory.create_batch(count, folder=SharedFolderFactory(),
                                         graphical_recording=True)
    for record in records:
        share(record, user, AccessLevel.VIEW)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(RECORDS)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == count
    return len(queries), response


@pytest.mark.parametrize("as_superuser", [False, True], ids=["staff", "superuser"])
def test_record_changelist_runs_a_constant_number_of_queries(client, as_superuser):
    user = staff(can_view_recordings=True)
    if as_superuser:
        user.is_superuser = True
        user.save()
    client.force_login(user)
    client.get(RECORDS)  # warm process-wide caches (content types) before counting
    one, _ = _changelist_queries(client, 1, user)
    Record.objects.all().delete()
    thirty, response = _changelist_queries(client, 30, user)
    assert thirty == one, (one, thirty)
    # The "recordings viewable by you" column comes from the same queries.
    viewable = {r.recordings_viewable for r in response.context["cl"].result_list}
    assert viewable == {True}


def test_recordings_viewable_column_follows_the_rule(client):
    user = staff(connections=True)  # configures, but holds no view policy
    record = RecordFactory()
    share(record, user, AccessLevel.SHARE)
    client.force_login(user)
    [row] = client.get(RECORDS).context["cl"].result_list
    assert row.recordings_viewable is False
