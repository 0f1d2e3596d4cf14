"""Every read of the recordings app that a view needs, already permission-filtered."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Session, SignerKey, Stream


def trusted_signer_keys(user) -> QuerySet[SignerKey]:
    """Every signer public key readers trust, retired ones included (old parts still verify).

    Public keys only, so any authenticated user may list them.
    """
    if user is None or not user.is_authenticated:
        return SignerKey.objects.none()
    return SignerKey.objects.order_by("-created_at", "-id")


# ------------------------------------------------------------------ sessions and parts


def sessions_visible_to(user) -> QuerySet[Session]:
    """Sessions of records whose recordings ``user`` may view (policy ∧ record access).

    Listed whatever their state, recorded or not, with what a list shows joined in.
    """
    from policies.selectors import records_with_viewable_recordings

    if user is None or not user.is_authenticated or getattr(user, "pk", None) is None:
        return Session.objects.none()
    return (
        Session.objects.filter(record__in=records_with_viewable_recordings(user))
        .select_related("record", "gateway", "recording")
        .prefetch_related("recording__streams")
        .order_by("-started_at")
    )


def record_sessions(user, record_id: int) -> QuerySet[Session]:
    """Session Activity of one record (empty when the caller may not view its recordings)."""
    return sessions_visible_to(user).filter(record_id=record_id)


def stream_for_reading(user, session_id, kind: str) -> Stream | None:
    """The stream ``kind`` of a session the caller may view, or None (→ 404)."""
    session = sessions_visible_to(user).filter(pk=session_id).first()
    if session is None or not hasattr(session, "recording"):
        return None
    return Stream.objects.filter(recording=session.recording, kind=kind).first()
