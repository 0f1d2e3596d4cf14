"""``manage.py demo_setup``: idempotent, complete, demonstrating the recordings rule,
and leaving sealed sessions the demo auditor can play."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from guardian.models import GroupObjectPermission, UserObjectPermission

from keeperpam.crypto import keys as crypto_keys
from keeperpam.crypto.parts import stream_open
from keeperpam.crypto.terminal import records_decode, records_from_typescript
from policies import selectors
from policies.models import Role
from recordings import services as recording_services
from recordings.choices import SessionStatus, StreamState
from recordings.management.commands.demo_setup import DEMO_FIXTURES, DEMO_SESSIONS
from recordings.models import Part, Recording, Session, SignerKey, Stream
from tests.paths import FIXTURES
from vault import services
from vault.choices import RecordType
from vault.models import (
    AuditEvent,
    FolderMembership,
    PamConfiguration,
    Record,
    RecordKey,
    RecordKeyShare,
    RecordShare,
    SharedFolder,
    UserKey,
)
from vault.protocols import PROTOCOLS_BY_RECORD_TYPE, supports_text_recording

# The demo sessions are sealed by tasks sent on commit, as after a gateway's requests:
# the test must really commit.
pytestmark = pytest.mark.django_db(transaction=True)

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
    UserKey,
    RecordKey,
    RecordKeyShare,
    Session,
    Recording,
    Stream,
    Part,
)


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # The demo sets four passwords per run; production-strength hashing only slows tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def sealing(data_dirs, eager_celery):
    """Sealed parts, staging and the signer key under tmp_path; tasks run in-process."""


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

    key = UserKey.objects.get(user_id=first["users"]["auditor"]["id"])

    second = run_json()

    assert second == first
    assert row_counts() == counts
    # The auditor's key is left alone (a new one would orphan the record key shares).
    again = UserKey.objects.get(pk=key.pk)
    assert (again.key_id, again.protected_private_key) == (key.key_id, key.protected_private_key)


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
        # One database records text only, to show the toggle off.
        assert record.graphical_recording == (record.name != "billing-db (PostgreSQL)")
        assert record.text_recording == supports_text_recording(record.protocol)
        effective = record.effective_recording()
        assert effective.graphical == record.graphical_recording
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


# ----------------------------------------------------------------- recorded sessions


def _parts(stream: Stream) -> list[bytes]:
    out = []
    for part in stream.parts.order_by("seq"):
        with default_storage.open(part.storage_name, "rb") as handle:
            out.append(handle.read())
    return out


def _signers() -> dict:
    return {s.key_id: crypto_keys.signer_public_key_load(crypto_keys.b64u_decode(s.public_key))
            for s in SignerKey.objects.all()}


def test_demo_sessions_are_sealed_and_listed():
    summary = run_json()

    assert len(summary["sessions"]) == len(DEMO_SESSIONS)
    for listed, spec in zip(summary["sessions"], DEMO_SESSIONS, strict=True):
        session = Session.objects.get(pk=listed["id"])
        assert session.status == SessionStatus.SEALED, session.error
        assert listed["status"] == SessionStatus.SEALED
        assert session.record.name == spec.record
        assert listed["record"] == session.record_id
        assert session.gateway.pk == summary["gateway"]["id"]
        assert session.launched_by == spec.launched_by
        assert session.client_address == spec.client_address
        assert session.duration_ms == spec.duration.total_seconds() * 1000
        assert listed["streams"] == dict(session.recording.streams.values_list("kind", "state"))
    engineer = user(summary, "engineer")
    assert Session.objects.filter(user=engineer).count() == 2  # linked to the vault account


def test_auditor_unlocks_the_demo_key_and_plays_the_demo_session():
    summary = run_json()
    auditor = user(summary, "auditor")
    session = Session.objects.get(pk=summary["sessions"][0]["id"])
    assert selectors.may_view_recordings(auditor, session.record)

    # What the auditor's browser does: unlock the key with the demo passphrase...
    user_key = crypto_keys.user_key_unlock(
        auditor.vault_key.protected_private_key,
        passphrase=summary["users"]["auditor"]["vault_passphrase"], user_id=str(auditor.pk),
    )
    # ...open the record key share of the session's record...
    record_key = session.recording.record_key
    record_private = crypto_keys.record_key_share_unwrap(
        record_key.shares.get(user=auditor).share, user_private_key=user_key,
        user_id=str(auditor.pk), record_kid=record_key.key_id,
    )
    # ...and decrypt the streams, which must be complete (stream_open raises otherwise).
    streams = {s.kind: s for s in session.recording.streams.all()}
    assert streams["terminal"].state == StreamState.SEALED

    def opened(kind: str) -> list:
        return list(stream_open(_parts(streams[kind]), record_private_key=record_private,
                                signers=_signers(), recording=str(session.recording.pk),
                                stream=kind))

    terminal = opened("terminal")
    assert terminal[-1].header.final
    ts = (DEMO_FIXTURES / "guacd-ssh-short.typescript").read_bytes()
    tm = (DEMO_FIXTURES / "guacd-ssh-short.typescript.timing").read_text()
    assert [r for part in terminal for r in records_decode(part.body)] == list(
        records_from_typescript(io.BytesIO(ts), io.StringIO(tm)))
    assert b"".join(p.body for p in opened("guac")) == (
        DEMO_FIXTURES / "guacd-ssh-short.guac").read_bytes()


def test_with_a_broker_the_sessions_wait_for_a_worker(monkeypatch):
    # A broker is configured: nothing runs in-process. Sending is stubbed out so no
    # broker is needed here; the sessions stay queued for sealing.
    from keeperpam.celery import app as celery_app

    celery_app.conf.task_always_eager = False  # the eager_celery fixture puts it back
    monkeypatch.setattr(recording_services, "_enqueue", lambda task, *args: None)
    out = io.StringIO()
    call_command("demo_setup", stdout=out)

    assert "a Celery worker must run" in out.getvalue()
    assert set(Session.objects.values_list("status", flat=True)) == {SessionStatus.CLOSING}
    assert Session.objects.count() == len(DEMO_SESSIONS)


def test_the_shipped_fixtures_are_the_shared_ones():
    shipped = sorted(p.name for p in DEMO_FIXTURES.iterdir())
    assert shipped == sorted({name for spec in DEMO_SESSIONS for _, name in spec.files})
    if not FIXTURES.is_dir():
        pytest.skip(f"no shared fixtures at {FIXTURES}")
    for name in shipped:
        assert (DEMO_FIXTURES / name).read_bytes() == (FIXTURES / name).read_bytes(), name
