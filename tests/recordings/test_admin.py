"""The console: registering a gateway shows its credential once; credentials are revoked."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from recordings.authentication import token_hash
from recordings.models import Gateway, GatewayCredential
from tests.factories import PamConfigurationFactory, UserFactory
from tests.keyring import fast_passwords  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def admin(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_register_gateway_shows_the_token_once_and_stores_only_its_hash(admin):
    configuration = PamConfigurationFactory()
    response = admin.post(reverse("admin:recordings_gateway_add"), {
        "name": "dc1-guacd", "description": "", "configurations": [configuration.pk],
        "credentials-TOTAL_FORMS": "0", "credentials-INITIAL_FORMS": "0",
    }, follow=True)
    assert response.status_code == 200
    gateway = Gateway.objects.get(name="dc1-guacd")
    assert list(gateway.configurations.all()) == [configuration]
    shown = [str(m) for m in get_messages(response.wsgi_request) if "kpg_" in str(m)]
    assert len(shown) == 1
    token = shown[0].split(": ", 1)[1].split(" ")[0]
    credential = GatewayCredential.objects.get(gateway=gateway)
    assert credential.token_hash == token_hash(token)
    assert token not in str(GatewayCredential.objects.values().get())
    page = admin.get(reverse("admin:recordings_gateway_change", args=[gateway.pk]))
    assert token not in page.content.decode()


def test_revoke_action(admin):
    gateway = Gateway.objects.create(name="gw")
    credential = GatewayCredential.objects.create(gateway=gateway, prefix="abc", token_hash="0")
    admin.post(reverse("admin:recordings_gatewaycredential_changelist"),
               {"action": "revoke", "_selected_action": [credential.pk]})
    credential.refresh_from_db()
    assert credential.revoked_at is not None
