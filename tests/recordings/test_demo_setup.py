"""``manage.py demo_setup``: idempotent, complete, and demonstrating the recordings rule."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.management import CommandError, call_command
from guardian.models import GroupObjectPermission, UserObjectPermission

from policies import selectors
from policies.models import Role
from vault import services
from vault.choices import RecordType
from vault.models import (
    AuditEvent,
    FolderMembership,
    PamConfiguration,
    Record,
    RecordShare,
    SharedFolder,
)
from vault.protocols import PROTOCOLS_BY_RECORD_TYPE, supports_text_recording

pytestmark = pytest.mark.django_db

COUNTED_MODELS = (
    get_user_model(),
    Group,
    Role,
    PamConfiguration,
    SharedFolder,
    FolderMembership,
    Record,
    RecordShare,
    AuditEvent,
    UserObjectPermission,
    GroupObjectPermission,
)


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # The demo sets four passwords per run; production-strength hashing only slows tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_json() -> dict:
    """Run the command with --json; stdout must be exactly one JSON object."""
    out = io.StringIO()
    call_command("demo_setup", "--json", stdout=out)
    return json.loads(out.getvalue())


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in COUNTED_MODELS}


def user(summary: dict, key: str):
    return get_user_model().objects.get(pk=summary["users"][key]["id"])


def test_second_run_creates_nothing_and_reports_the_same():
    first = run_json()
    counts = row_counts()
    assert counts["vault.AuditEvent"] > 0  # the first run went through audited services

    second = run_json()

    assert second == first
    assert row_counts() == counts


def test_json_describes_the_instance():
    summary = run_json()

    assert summary["url"] == "http://127.0.0.1:8000/"
    assert set(summary["users"]) == {"admin", "auditor", "engineer", "no_access"}
    for login in summary["users"].values():
        assert {"username", "password", "id"} <= set(login)
    assert {f["name"] for f in summary["folders"]} == {"Production"}
    assert {r["name"] for r in summary["roles"]} >= {"Session Auditor", "Infrastructure Engineer"}
    assert len(summary["configurations"]) == 2
    assert {r["id"] for r in summary["records"]} == set(Record.objects.values_list("pk", flat=True))


def test_every_record_type_and_protocol_is_present():
    summary = run_json()
    present = {(r["record_type"], r["protocol"]) for r in summary["records"]}
    expected = {
        (record_type, protocol)
        for record_type, protocols in PROTOCOLS_BY_RECORD_TYPE.items()
        for protocol in protocols
    }
    assert expected <= present


def test_recording_toggles_follow_the_protocol_and_configuration():
    run_json()
    for record in Record.objects.select_related("configuration"):
        record.full_clean()  # the protocol matrix holds for every demo record
        assert record.graphical_recording
        assert record.text_recording == supports_text_recording(record.protocol)
        effective = record.effective_recording()
        assert effective.graphical
        assert effective.text == (
            supports_text_recording(record.protocol)
            and record.configuration.allow_text_recording
        )
    graphical_only = PamConfiguration.objects.get(allow_text_recording=False)
    assert graphical_only.allow_graphical_recording
    assert graphical_only.records.exists()


def test_demo_users_demonstrate_the_recordings_rule():
    summary = run_json()
    admin, auditor = user(summary, "admin"), user(summary, "auditor")
    engineer, observer = user(summary, "engineer"), user(summary, "no_access")
    folder = SharedFolder.objects.get(name="Production")
    folder_records = list(folder.records.all())
    assert {r.record_type for r in folder_records} == set(RecordType.values)

    assert admin.is_superuser
    for record in folder_records:
        assert selectors.may_view_recordings(auditor, record), record
        assert not selectors.may_view_recordings(engineer, record), record
        assert not selectors.may_view_recordings(observer, record), record
        # Separation of duties: the superuser has access but no view policy.
        assert not selectors.may_view_recordings(admin, record), record

    assert not selectors.records_visible_to(observer).exists()
    directly_shared = set(Record.objects.filter(shares__user=auditor))
    assert directly_shared  # besides the folder, the auditor holds direct shares
    assert set(selectors.records_with_viewable_recordings(auditor)) == {
        *folder_records, *directly_shared
    }


def test_engineer_configures_connections_but_not_remote_browsing():
    summary = run_json()
    engineer = user(summary, "engineer")
    folder_records = Record.objects.filter(folder__name="Production")

    for record in folder_records.exclude(record_type=RecordType.REMOTE_BROWSING):
        assert selectors.may_configure_record(engineer, record), record
    for record in folder_records.filter(record_type=RecordType.REMOTE_BROWSING):
        assert not selectors.may_configure_record(engineer, record), record
    assert selectors.may_configure_configurations(engineer)
    assert not selectors.may_configure_configurations(user(summary, "auditor"))


def test_passwords_log_in_and_pass_the_validators(client):
    summary = run_json()
    for login in summary["users"].values():
        account = get_user_model().objects.get(username=login["username"])
        validate_password(login["password"], account)
        assert client.login(username=login["username"], password=login["password"])
        client.logout()


def test_rerun_puts_back_what_drifted_through_the_services():
    summary = run_json()
    admin = user(summary, "admin")
    record = Record.objects.get(name="web-prod-01 (Linux web server)")
    services.record_update(record=record, acting_user=admin, text_recording=False)
    account = user(summary, "engineer")
    account.set_password("something else entirely")
    account.save()
    audit_rows = AuditEvent.objects.count()

    assert run_json() == summary

    record.refresh_from_db()
    assert record.text_recording
    assert AuditEvent.objects.count() == audit_rows + 1  # the repair is audited
    assert user(summary, "engineer").check_password(summary["users"]["engineer"]["password"])


def test_human_output_lists_urls_and_logins():
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/" in text
    assert "http://127.0.0.1:8000/admin/" in text
    summary = run_json()
    for login in summary["users"].values():
        assert login["username"] in text
        assert login["password"] in text


def test_refuses_production_mode(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("demo_setup", stdout=io.StringIO())
    assert not Record.objects.exists()
