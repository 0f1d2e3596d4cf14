"""The playback audit endpoint: every play and download a client reports is in the audit trail."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recordings import services
from tests.factories import PamConfigurationFactory, RecordFactory, UserFactory
from tests.keyring import fast_passwords, share, viewer_role  # noqa: F401
from vault.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def session():
    """A session of a record that records nothing (no key material needed to audit it)."""
    configuration = PamConfigurationFactory()
    record = RecordFactory(configuration=configuration, name="db-prod-01",
                           graphical_recording=False, text_recording=False)
    gateway = services.gateway_create(name="gw-audit", configurations=[configuration],
                                      acting_user=None)
    return services.session_open(gateway=gateway, record=record, protocol=record.protocol,
                                 launched_by="alice")


@pytest.fixture
def viewer(session):
    user = UserFactory()
    viewer_role(user)
    share(session.record, user)
    return user


def url(session) -> str:
    return reverse("session-audit", kwargs={"session_id": session.pk})


@pytest.mark.parametrize("action", ["play", "download"])
def test_viewer_play_and_download_are_audited_with_who_what_when_where(
        api_client, session, viewer, action):
    api_client.force_authenticate(viewer)
    response = api_client.post(url(session), {"action": action}, format="json",
                               REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 201, response.content
    assert response.json()["action"] == f"recording.{action}"
    event = AuditEvent.objects.get(action=f"recording.{action}")
    assert event.actor == viewer
    assert event.object_type == "recordings.session"
    assert event.object_id == str(session.pk)
    assert event.remote_addr == "192.0.2.7"
    assert event.after["record"] == session.record_id
    assert event.created_at is not None


def test_unknown_action_is_a_400(api_client, session, viewer):
    api_client.force_authenticate(viewer)
    response = api_client.post(url(session), {"action": "delete"}, format="json")
    assert response.status_code == 400
    assert "action" in response.json()["errors"]
    assert not AuditEvent.objects.filter(action__startswith="recording.").exists()


@pytest.mark.parametrize("who", ["no_policy", "no_access", "superuser", "anonymous"])
def test_others_get_404_and_nothing_is_written(api_client, session, who):
    if who == "no_policy":
        user = UserFactory()
        share(session.record, user)
    elif who == "no_access":
        user = UserFactory()
        viewer_role(user)
    elif who == "superuser":  # separation of duties: no superuser exception to the view rule
        user = UserFactory(is_superuser=True, is_staff=True)
    else:
        user = None
    if user is not None:
        api_client.force_authenticate(user)
    response = api_client.post(url(session), {"action": "play"}, format="json")
    assert response.status_code in ((401, 403) if user is None else (404,))
    assert not AuditEvent.objects.filter(action__startswith="recording.").exists()


def test_unknown_session_is_a_404(api_client, viewer):
    api_client.force_authenticate(viewer)
    response = api_client.post("/api/v1/sessions/00000000-0000-0000-0000-000000000000/audit/",
                               {"action": "play"}, format="json")
    assert response.status_code == 404


def test_play_and_download_events_show_and_filter_in_the_admin(client, api_client, session,
                                                                viewer):
    api_client.force_authenticate(viewer)
    for action in ("play", "download", "download"):
        api_client.post(url(session), {"action": action}, format="json")
    admin = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    changelist = reverse("admin:vault_auditevent_changelist")
    page = client.get(changelist)
    assert page.status_code == 200
    body = page.content.decode()
    # The action filter offers both, as values of the trail.
    assert "recording.play" in body
    assert "recording.download" in body
    filtered = client.get(changelist, {"action": "recording.download"})
    assert filtered.status_code == 200
    assert filtered.context["cl"].result_count == 2
    by_actor = client.get(changelist, {"action": "recording.play",
                                       "actor__id__exact": viewer.pk})
    assert by_actor.context["cl"].result_count == 1
