"""The vault UI's pages (server side): sign-in required, enrol first, safe redirects."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory
from tests.keyring import enrol, fast_passwords  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PAGES = ["/", "/enrol/", "/unlock/", "/records/1/sessions/"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("path", ["/", "/records/7/sessions/?page=2"])
def test_without_a_key_pages_lead_to_enrolment_and_come_back(client, path):
    client.force_login(UserFactory())
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/enrol/?next=")
    follow = client.get(response["Location"])
    assert follow.status_code == 200
    assert follow.context["next"] == path
    assert client.get("/unlock/")["Location"].startswith("/enrol/")


def test_with_a_key_the_pages_render_and_enrol_leads_to_unlock(client):
    user = UserFactory()
    enrol(user)
    client.force_login(user)
    records = client.get("/")
    assert records.status_code == 200
    assert b'id="records-table"' in records.content
    assert b'"ksr1"' in records.content  # the import map is on every page
    activity = client.get("/records/42/sessions/")
    assert activity.status_code == 200
    assert b"activityPage({ recordId: 42 })" in activity.content
    assert client.get("/unlock/").status_code == 200
    assert client.get("/enrol/")["Location"].startswith("/unlock/")


def test_next_must_be_local(client):
    client.force_login(UserFactory())
    page = client.get("/enrol/", {"next": "https://evil.example/"})
    assert page.context["next"] == "/"
    page = client.get("/enrol/", {"next": "/records/3/sessions/"})
    assert page.context["next"] == "/records/3/sessions/"
