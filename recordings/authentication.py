"""DRF authentication for gateways: ``Authorization: Gateway kpg_<prefix>_<secret>``."""

from __future__ import annotations

import hashlib
import hmac

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .models import Gateway, GatewayCredential

KEYWORD = "Gateway"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class GatewayPrincipal:
    """``request.user`` for a gateway: authenticated, never a vault user, no permissions."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.username = f"gateway:{gateway.name}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, *args, **kwargs) -> bool:
        return False


class GatewayAuthentication(authentication.BaseAuthentication):
    """Authenticate a gateway credential; revoked or unknown tokens are refused (401)."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() != KEYWORD.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid gateway credential header.")
        token = header[1].decode("latin-1")
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "kpg":
            raise exceptions.AuthenticationFailed("Invalid gateway credential.")
        credential = (
            GatewayCredential.objects.select_related("gateway")
            .filter(prefix=parts[1], revoked_at__isnull=True).first()
        )
        if credential is None or not hmac.compare_digest(credential.token_hash,
                                                         token_hash(token)):
            raise exceptions.AuthenticationFailed("Invalid or revoked gateway credential.")
        now = timezone.now()
        # Touch at most once a minute: every PATCH authenticates.
        if credential.last_used_at is None or (now - credential.last_used_at).total_seconds() > 60:
            GatewayCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
            Gateway.objects.filter(pk=credential.gateway_id).update(last_seen_at=now)
        return GatewayPrincipal(credential.gateway), credential

    def authenticate_header(self, request) -> str:
        return KEYWORD


class IsGateway:
    """Permission: the caller authenticated as a gateway."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, GatewayPrincipal)

    def has_object_permission(self, request, view, obj) -> bool:
        return True


class GatewayAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the gateway credential in the OpenAPI schema."""

    target_class = "recordings.authentication.GatewayAuthentication"
    name = "gatewayCredential"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Gateway kpg_<prefix>_<secret>` (issued in the admin, shown "
                               "once)."}
