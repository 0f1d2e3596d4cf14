"""The one place that answers "may this user do X to this record".

Configuring follows the *configure* policies; viewing recordings needs the
right *view* policy for the record's type **and** at least view-only access
to the record, with no superuser exception (separation of duties).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from vault.choices import RecordType
from vault.models import PamConfiguration, Record, SharedFolder

from .choices import NON_RBI_TYPES, Policy
from .models import Role

POLICY_FIELDS: tuple[str, ...] = tuple(Policy.values)


def roles_of(user) -> QuerySet[Role]:
    """Roles ``user`` holds, directly or through one of their groups."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.objects.none()
    return Role.objects.filter(Q(users=user) | Q(groups__user=user)).distinct()


def user_policies(user) -> frozenset[str]:
    """The enforcement policies ``user`` holds through any of their roles (one query).

    Not cached: a role change or a revoked membership takes effect on the very
    next question.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    held: set[str] = set()
    for row in roles_of(user).values_list(*POLICY_FIELDS):
        held.update(name for name, on in zip(POLICY_FIELDS, row, strict=True) if on)
    return frozenset(held)


def has_policy(user, policy: str) -> bool:
    """Whether ``user`` holds ``policy`` through a role."""
    return policy in user_policies(user)


# ------------------------------------------------------------------- configuring


def configurable_record_types(user) -> tuple[str, ...]:
    """Record types ``user`` may create and configure."""
    if user is not None and user.is_authenticated and user.is_active and user.is_superuser:
        return tuple(RecordType.values)
    held = user_policies(user)
    types: list[str] = []
    if Policy.CONFIGURE_CONNECTIONS in held:
        types.extend(NON_RBI_TYPES)
    if Policy.CONFIGURE_REMOTE_BROWSING in held:
        types.append(RecordType.REMOTE_BROWSING)
    return tuple(types)


def may_configure_record_type(user, record_type: str) -> bool:
    """Whether ``user`` may create records of ``record_type``."""
    return record_type in configurable_record_types(user)


def may_configure_configurations(user) -> bool:
    """Whether ``user`` may create or change PAM configurations."""
    if user is not None and user.is_authenticated and user.is_active and user.is_superuser:
        return True
    return has_policy(user, Policy.CONFIGURE_CONNECTIONS)


def records_configurable_by(user) -> QuerySet[Record]:
    """Records ``user`` may change: the configure policy for the type and edit access."""
    if user is not None and user.is_authenticated and user.is_active and user.is_superuser:
        return Record.objects.all()
    types = configurable_record_types(user)
    if not types:
        return Record.objects.none()
    return Record.objects.restrict(user, "change").filter(record_type__in=types)


def may_configure_record(user, record: Record) -> bool:
    """Whether ``user`` may change ``record``'s connection and PAM settings."""
    if not may_configure_record_type(user, record.record_type):
        return False
    return records_configurable_by(user).filter(pk=record.pk).exists()


def may_share_record(user, record: Record) -> bool:
    """Whether ``user`` may share ``record`` with others (share access, or superuser)."""
    if user is not None and user.is_authenticated and user.is_active and user.is_superuser:
        return True
    return Record.objects.restrict(user, "share").filter(pk=record.pk).exists()


# --------------------------------------------------------------------- reading


def records_visible_to(user) -> QuerySet[Record]:
    """Records ``user`` can see: any access, or every record for a superuser."""
    return Record.objects.restrict(user, "view")


def configurations_visible_to(user) -> QuerySet[PamConfiguration]:
    """PAM configurations ``user`` can see: all of them for configurers, else those in use
    by a record the user can see."""
    if may_configure_configurations(user) or configurable_record_types(user):
        return PamConfiguration.objects.all()
    return PamConfiguration.objects.filter(
        pk__in=records_visible_to(user).values("configuration_id")
    )


def folders_visible_to(user) -> QuerySet[SharedFolder]:
    """Shared folders ``user`` belongs to (directly or by group), or all for superusers."""
    if user is None or not user.is_authenticated or not user.is_active:
        return SharedFolder.objects.none()
    if user.is_superuser:
        return SharedFolder.objects.all()
    return SharedFolder.objects.filter(
        Q(memberships__user=user) | Q(memberships__group__user=user)
    ).distinct()


# ------------------------------------------------------------ viewing recordings


def record_types_with_viewable_recordings(user) -> tuple[str, ...]:
    """Record types whose recordings ``user``'s policies allow viewing."""
    held = user_policies(user)
    types: list[str] = []
    if Policy.VIEW_RECORDINGS in held:
        types.extend(NON_RBI_TYPES)
    if Policy.VIEW_RBI_RECORDINGS in held:
        types.append(RecordType.REMOTE_BROWSING)
    return tuple(types)


def records_with_viewable_recordings(user) -> QuerySet[Record]:
    """Records whose recordings ``user`` may list, play and download.

    Two queries at most, whatever the number of records: the user's policies,
    then the records filtered in SQL by type and by guardian view access.
    """
    types = record_types_with_viewable_recordings(user)
    if not types:
        return Record.objects.none()
    return Record.objects.restrict(user, "view", superuser_sees_all=False).filter(
        record_type__in=types
    )


def may_view_recordings(user, record: Record) -> bool:
    """Whether ``user`` may list, play and download ``record``'s recordings."""
    if record.record_type not in record_types_with_viewable_recordings(user):
        return False
    return records_with_viewable_recordings(user).filter(pk=record.pk).exists()
