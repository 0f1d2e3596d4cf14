"""Every read of the recordings app that a view needs, already permission-filtered."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import SignerKey


def trusted_signer_keys(user) -> QuerySet[SignerKey]:
    """Every signer public key readers trust, retired ones included (old parts still verify).

    Public keys only, so any authenticated user may list them.
    """
    if user is None or not user.is_authenticated:
        return SignerKey.objects.none()
    return SignerKey.objects.order_by("-created_at", "-id")
