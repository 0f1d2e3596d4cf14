"""The one place that answers "may this user do X to this record".

Configuring follows the *configure* policies; viewing recordings needs the
right *view* policy for the record's type **and** at least view-only access
to the record, with no superuser exception (separation of duties).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from vault.choices import AccessLevel, RecordType
from vault.models import FolderMembership, PamConfiguration, Record, SharedFolder

from .choices import NON_RBI_TYPES, Policy, view_policy_for
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
    # records_configurable_by already filters by the types the user may configure.
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


def folders_managed_by(user) -> QuerySet[SharedFolder]:
    """Shared folders ``user`` may rename, delete and change the members of.

    Superusers manage every folder; anyone else needs a membership with *share*
    access, held directly or through one of their groups.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return SharedFolder.objects.none()
    if user.is_superuser:
        return SharedFolder.objects.all()
    managing = FolderMembership.objects.filter(access=AccessLevel.SHARE).filter(
        Q(user=user) | Q(group__user=user)
    )
    return SharedFolder.objects.filter(pk__in=managing.values("folder_id"))


def may_manage_folder(user, folder: SharedFolder) -> bool:
    """Whether ``user`` may change ``folder`` and its members (see :func:`folders_managed_by`)."""
    return folders_managed_by(user).filter(pk=folder.pk).exists()


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
    # records_with_viewable_recordings already filters by the types the policies cover.
    return records_with_viewable_recordings(user).filter(pk=record.pk).exists()


# ------------------------------------------------- who may view a record's recordings


def _view_record_grants():
    """Guardian's *view_record* rows (user and group), filtered in SQL, no content-type lookup."""
    from guardian.models import GroupObjectPermission, UserObjectPermission

    scope = {
        "content_type__app_label": Record._meta.app_label,
        "content_type__model": Record._meta.model_name,
        "permission__codename": "view_record",
    }
    return (
        UserObjectPermission.objects.filter(**scope),
        GroupObjectPermission.objects.filter(**scope),
    )


def _policy_holders(policy: str) -> QuerySet:
    """Active users holding ``policy`` through a role, directly or via a group (a subquery)."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    direct = Role.users.through.objects.filter(**{f"role__{policy}": True}).values("user_id")
    by_group = user_model.groups.through.objects.filter(
        **{f"group__pam_roles__{policy}": True}
    ).values("user_id")
    return user_model.objects.filter(is_active=True).filter(
        Q(pk__in=direct) | Q(pk__in=by_group)
    )


def users_who_may_view_recordings(record: Record) -> QuerySet:
    """Users who may list, play and download ``record``'s recordings (one SQL query).

    The mirror image of :func:`may_view_recordings`: the view policy for the
    record's type through a role (directly or via a group) **and** guardian view
    access to the record (a direct or a group permission). No superuser
    exception. Used to decide who receives a record key share.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user_perms, group_perms = _view_record_grants()
    object_pk = str(record.pk)
    with_access = Q(pk__in=user_perms.filter(object_pk=object_pk).values("user_id")) | Q(
        pk__in=user_model.groups.through.objects.filter(
            group_id__in=group_perms.filter(object_pk=object_pk).values("group_id")
        ).values("user_id")
    )
    return _policy_holders(view_policy_for(record.record_type)).filter(with_access)


def recording_viewers(record_ids: Iterable[int]) -> dict[int, set[int]]:
    """For many records at once: record id → ids of users who may view its recordings.

    Same rule as :func:`users_who_may_view_recordings`, in a fixed number of
    queries whatever the number of records (for key-share reconciliation and
    pending grants). Records nobody may view map to an empty set.
    """
    record_ids = list(record_ids)
    if not record_ids:
        return {}
    type_of = dict(Record.objects.filter(pk__in=record_ids).values_list("pk", "record_type"))
    viewers: dict[int, set[int]] = {pk: set() for pk in type_of}
    if not type_of:
        return viewers
    object_pks = [str(pk) for pk in type_of]
    user_perms, group_perms = _view_record_grants()
    access: set[tuple[int, int]] = {
        (int(object_pk), user_id)
        for object_pk, user_id in user_perms.filter(object_pk__in=object_pks).values_list(
            "object_pk", "user_id"
        )
    }
    access.update(
        (int(object_pk), user_id)
        for object_pk, user_id in group_perms.filter(
            object_pk__in=object_pks, group__user__isnull=False
        ).values_list("object_pk", "group__user")
    )
    user_ids = {user_id for _, user_id in access}
    holders = {
        policy: set(_policy_holders(policy).filter(pk__in=user_ids).values_list("pk", flat=True))
        for policy in {view_policy_for(t) for t in type_of.values()}
    } if user_ids else {}
    for record_id, user_id in access:
        if user_id in holders.get(view_policy_for(type_of[record_id]), ()):
            viewers[record_id].add(user_id)
    return viewers
