"""Client-side key helpers for the key-management tests: what a browser or the CLI does.

PBKDF2 at the server's minimum (1,000,000 iterations) is the slow part, so a
protected blob is made once per test session and reused where the test only
needs the server to accept it; tests that unlock a key protect it for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import count
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keeperpam.crypto import keys as crypto_keys
from policies.models import Role
from policies.services import role_create
from vault import key_services, services
from vault.choices import AccessLevel
from vault.models import Record

ITERATIONS = 1_000_000


@pytest.fixture
def fast_passwords(settings) -> None:
    """Cheap password hashing: factories set login passwords, which these tests never use."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@cache
def protected_blob() -> dict[str, Any]:
    """A well-formed §6 blob at 1,000,000 iterations (made once; the server cannot open it)."""
    return crypto_keys.user_key_protect(
        crypto_keys.record_key_generate(), passphrase="shared test blob", user_id="0",
        iterations=ITERATIONS,
    )


@dataclass
class ClientKey:
    """A user's key pair as their client holds it."""

    user_id: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_b64u(self) -> str:
        return crypto_keys.b64u_encode(crypto_keys.public_key_der(self.private_key.public_key()))

    def open_share(self, share: str, record_kid: str) -> ec.EllipticCurvePrivateKey:
        return crypto_keys.record_key_share_unwrap(
            share, user_private_key=self.private_key, user_id=self.user_id,
            record_kid=record_kid,
        )


def new_client_key(user) -> ClientKey:
    return ClientKey(user_id=str(user.pk), private_key=crypto_keys.record_key_generate())


def enrol(user) -> ClientKey:
    """Enrol a fresh key for ``user`` through the service (with the shared protected blob)."""
    client_key = new_client_key(user)
    key_services.user_key_set(user=user, public_key=client_key.public_b64u,
                              protected_private_key=protected_blob())
    return client_key


_role_names = count(1)


def viewer_role(*users, name: str | None = None, **policies) -> Role:
    """A role holding the view-recordings policies (both unless told), for ``users``."""
    policies = policies or {"can_view_recordings": True, "can_view_rbi_recordings": True}
    name = name or f"Auditors {next(_role_names)}"
    return role_create(acting_user=None, name=name, users=list(users), **policies)


def share(record: Record, user, access: str = AccessLevel.VIEW):
    return services.record_share_grant(record=record, user=user, access=access, acting_user=None)


def public_der_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    return crypto_keys.b64u_encode(crypto_keys.public_key_der(private_key.public_key()))

