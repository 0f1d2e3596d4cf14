"""Reads of key material that the API and the vault UI need, already permission-filtered."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from .access import rules
from .models import Record, RecordKey, RecordKeyShare, UserKey


def user_key_of(user) -> UserKey | None:
    """``user``'s enrolled key, or None before enrolment."""
    return UserKey.objects.filter(user=user).first()


def record_for_key_shares(user, record_id: int) -> Record | None:
    """The record if ``user`` may view its recordings (else None, which the API answers 404)."""
    return rules().records_with_viewable_recordings(user).filter(pk=record_id).first()


def record_key_shares_of(user, record: Record) -> QuerySet[RecordKeyShare]:
    """``user``'s own shares of ``record``'s keys, newest version first.

    The caller checks first that ``user`` may view the record's recordings
    (:func:`record_for_key_shares`): a share alone gives no right.
    """
    return (
        RecordKeyShare.objects.filter(user=user, record_key__record=record)
        .select_related("record_key")
        .order_by("-record_key__version")
    )


@dataclass(frozen=True)
class PendingGrant:
    """A user who may view a record's recordings but lacks a share of one of its keys."""

    record_key: RecordKey
    user_key: UserKey

    @property
    def record(self) -> Record:
        return self.record_key.record


def pending_grants_for(user) -> list[PendingGrant]:
    """Grants ``user``'s client can make now: re-wrap a record key it holds for someone else.

    A pending grant is (record key, target) where ``user`` holds a share of
    that record key and may view the record's recordings, and the target may
    view them too, has enrolled a key and has no share of that key. Every key
    version the caller holds counts, so a new viewer also gets older
    recordings. A fixed number of queries whatever the number of records.
    """
    held = list(
        RecordKey.objects.filter(
            shares__user=user,
            record__in=rules().records_with_viewable_recordings(user),
        ).select_related("record")
    )
    if not held:
        return []
    viewers = rules().recording_viewers({record_key.record_id for record_key in held})
    candidates = set().union(*viewers.values())
    candidates.discard(user.pk)
    user_keys = {
        user_key.user_id: user_key
        for user_key in UserKey.objects.filter(user_id__in=candidates).select_related("user")
    }
    if not user_keys:
        return []
    have = set(
        RecordKeyShare.objects.filter(
            record_key__in=held, user_id__in=list(user_keys)
        ).values_list("record_key_id", "user_id")
    )
    grants = [
        PendingGrant(record_key=record_key, user_key=user_keys[target])
        for record_key in held
        for target in viewers.get(record_key.record_id, ())
        if target in user_keys and (record_key.pk, target) not in have
    ]
    grants.sort(key=lambda g: (g.record.name, g.record.pk, -g.record_key.version,
                               g.user_key.user.username))
    return grants
