"""Every write to the vault: validated, audited, and kept consistent with guardian.

Object-level rights on records are *derived*: django-guardian rows are
recomputed from direct shares and folder memberships whenever one of them
changes, so a record reachable two ways keeps the stronger right when one of
them is revoked, and nothing else ever writes guardian rows for records.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from guardian.models import GroupObjectPermission, UserObjectPermission

from .choices import AccessLevel, AuditAction
from .models import (
    AuditEvent,
    FolderMembership,
    PamConfiguration,
    Record,
    RecordShare,
    SharedFolder,
)

# The guardian permissions each access level carries on a record.
PERMISSIONS_BY_ACCESS: dict[str, tuple[str, ...]] = {
    AccessLevel.VIEW: ("view_record",),
    AccessLevel.EDIT: ("view_record", "change_record"),
    AccessLevel.SHARE: ("view_record", "change_record", "share_record"),
}
ACCESS_RANK = {AccessLevel.VIEW: 1, AccessLevel.EDIT: 2, AccessLevel.SHARE: 3}
RECORD_PERMISSION_CODENAMES = ("view_record", "change_record", "share_record")


# --------------------------------------------------------------------------- audit


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


def snapshot(instance: models.Model) -> dict[str, Any]:
    """The concrete field values of ``instance``, JSON-ready, for audit before/after."""
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in {"created_at", "updated_at"}:
            continue
        data[field.attname] = _jsonable(getattr(instance, field.attname))
    return data


def audit_event_write(
    *,
    actor,
    action: str,
    instance: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    remote_addr: str | None = None,
) -> AuditEvent:
    """Append one row to the audit trail (call inside the writer's transaction)."""
    if instance is not None:
        object_type = object_type or instance._meta.label_lower
        object_id = object_id or str(instance.pk)
        object_repr = object_repr or str(instance)[:300]
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_repr=getattr(actor, "username", "") or "system",
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=before,
        after=after,
        remote_addr=remote_addr,
    )


def _apply_fields(instance: models.Model, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name not in {f.name for f in instance._meta.fields}:
            raise ValidationError({name: "Unknown field."})
        setattr(instance, name, value)


def _save_audited(instance: models.Model, *, acting_user, before: dict | None) -> None:
    instance.full_clean()
    instance.save()
    after = snapshot(instance)
    if before is None:
        audit_event_write(actor=acting_user, action=AuditAction.CREATE, instance=instance,
                          after=after)
    elif before != after:
        changed = {k for k in after if before.get(k) != after.get(k)}
        audit_event_write(
            actor=acting_user,
            action=AuditAction.UPDATE,
            instance=instance,
            before={k: before.get(k) for k in changed},
            after={k: after[k] for k in changed},
        )


def _delete_audited(instance: models.Model, *, acting_user) -> None:
    before = snapshot(instance)
    audit_event_write(actor=acting_user, action=AuditAction.DELETE, instance=instance,
                      before=before)
    instance.delete()


# ------------------------------------------------------------------ configurations


@transaction.atomic
def configuration_create(*, acting_user, **fields: Any) -> PamConfiguration:
    """Create a PAM configuration."""
    configuration = PamConfiguration()
    _apply_fields(configuration, fields)
    _save_audited(configuration, acting_user=acting_user, before=None)
    return configuration


@transaction.atomic
def configuration_update(
    *, configuration: PamConfiguration, acting_user, **fields: Any
) -> PamConfiguration:
    """Change a PAM configuration's settings."""
    before = snapshot(PamConfiguration.objects.get(pk=configuration.pk))
    _apply_fields(configuration, fields)
    _save_audited(configuration, acting_user=acting_user, before=before)
    return configuration


@transaction.atomic
def configuration_delete(*, configuration: PamConfiguration, acting_user) -> None:
    """Delete a PAM configuration that no record uses any more."""
    if configuration.records.exists():
        raise ValidationError(
            f"“{configuration}” is used by {configuration.records.count()} record(s); "
            "move them to another configuration first."
        )
    _delete_audited(configuration, acting_user=acting_user)


# ------------------------------------------------------------------------- records


@transaction.atomic
def record_create(*, acting_user, share_with_creator: bool = True, **fields: Any) -> Record:
    """Create a record; its creator gets a direct share with full rights unless told not to."""
    record = Record(created_by=acting_user if acting_user and acting_user.pk else None)
    _apply_fields(record, fields)
    _save_audited(record, acting_user=acting_user, before=None)
    if share_with_creator and acting_user is not None and acting_user.pk:
        RecordShare.objects.create(
            record=record, user=acting_user, access=AccessLevel.SHARE, granted_by=acting_user
        )
    record_permissions_sync(records=[record])
    return record


@transaction.atomic
def record_update(*, record: Record, acting_user, **fields: Any) -> Record:
    """Change a record's connection or PAM settings (the protocol matrix is enforced)."""
    before = snapshot(Record.objects.get(pk=record.pk))
    _apply_fields(record, fields)
    _save_audited(record, acting_user=acting_user, before=before)
    if before["folder_id"] != record.folder_id:
        record_permissions_sync(records=[record])
    return record


@transaction.atomic
def record_delete(*, record: Record, acting_user) -> None:
    """Delete a record and every right held on it."""
    _clear_record_permissions([record.pk])
    _delete_audited(record, acting_user=acting_user)


# -------------------------------------------------------------------------- folders


@transaction.atomic
def folder_create(*, acting_user, **fields: Any) -> SharedFolder:
    """Create a shared folder."""
    folder = SharedFolder()
    _apply_fields(folder, fields)
    _save_audited(folder, acting_user=acting_user, before=None)
    return folder


@transaction.atomic
def folder_update(*, folder: SharedFolder, acting_user, **fields: Any) -> SharedFolder:
    """Rename or describe a shared folder."""
    before = snapshot(SharedFolder.objects.get(pk=folder.pk))
    _apply_fields(folder, fields)
    _save_audited(folder, acting_user=acting_user, before=before)
    return folder


@transaction.atomic
def folder_delete(*, folder: SharedFolder, acting_user) -> None:
    """Delete a folder; its records stay, outside any folder, and lose the folder's rights."""
    record_ids = list(folder.records.values_list("pk", flat=True))
    _delete_audited(folder, acting_user=acting_user)
    record_permissions_sync(records=Record.objects.filter(pk__in=record_ids))


@transaction.atomic
def folder_member_set(
    *, folder: SharedFolder, acting_user, access: str, user=None, group: Group | None = None
) -> FolderMembership:
    """Add a user or group to a folder, or change their access level."""
    if (user is None) == (group is None):
        raise ValidationError("Name either a user or a group.")
    if access not in ACCESS_RANK:
        raise ValidationError({"access": f"Unknown access level “{access}”."})
    lookup = {"user": user} if user is not None else {"group": group}
    membership = FolderMembership.objects.filter(folder=folder, **lookup).first()
    before = snapshot(membership) if membership else None
    if membership is None:
        membership = FolderMembership(folder=folder, **lookup)
    membership.access = access
    membership.full_clean()
    membership.save()
    audit_event_write(
        actor=acting_user,
        action=AuditAction.GRANT,
        instance=membership,
        before=before,
        after=snapshot(membership),
    )
    record_permissions_sync(records=folder.records.all())
    return membership


@transaction.atomic
def folder_member_remove(*, membership: FolderMembership, acting_user) -> None:
    """Take a user or group out of a folder: their folder rights end at once."""
    folder = membership.folder
    audit_event_write(
        actor=acting_user, action=AuditAction.REVOKE, instance=membership,
        before=snapshot(membership),
    )
    membership.delete()
    record_permissions_sync(records=folder.records.all())


# --------------------------------------------------------------------------- shares


@transaction.atomic
def record_share_grant(*, record: Record, user, access: str, acting_user) -> RecordShare:
    """Share a record directly with a user, or change the level of an existing share."""
    if access not in ACCESS_RANK:
        raise ValidationError({"access": f"Unknown access level “{access}”."})
    share = RecordShare.objects.filter(record=record, user=user).first()
    before = snapshot(share) if share else None
    if share is None:
        share = RecordShare(record=record, user=user, granted_by=acting_user)
    share.access = access
    share.full_clean()
    share.save()
    audit_event_write(
        actor=acting_user, action=AuditAction.GRANT, instance=share, before=before,
        after=snapshot(share),
    )
    record_permissions_sync(records=[record])
    return share


@transaction.atomic
def record_share_revoke(*, share: RecordShare, acting_user) -> None:
    """Remove a direct share: the user keeps only what folders still give them."""
    record = share.record
    audit_event_write(
        actor=acting_user, action=AuditAction.REVOKE, instance=share, before=snapshot(share)
    )
    share.delete()
    record_permissions_sync(records=[record])


# ------------------------------------------------------------- guardian materialiser


def _record_permissions(content_type: ContentType) -> dict[str, Any]:
    from django.contrib.auth.models import Permission

    return {
        p.codename: p
        for p in Permission.objects.filter(
            content_type=content_type, codename__in=RECORD_PERMISSION_CODENAMES
        )
    }


def _clear_record_permissions(record_ids: list[int]) -> None:
    content_type = ContentType.objects.get_for_model(Record)
    object_pks = [str(pk) for pk in record_ids]
    for model in (UserObjectPermission, GroupObjectPermission):
        model.objects.filter(
            content_type=content_type,
            object_pk__in=object_pks,
            permission__codename__in=RECORD_PERMISSION_CODENAMES,
        ).delete()


def record_permissions_sync(*, records: Iterable[Record]) -> None:
    """Recompute guardian rows for ``records`` from their shares and folder memberships.

    Runs a fixed number of queries whatever the number of records or members.
    """
    records = list(records)
    if not records:
        return
    record_ids = [r.pk for r in records]
    folder_of = dict(Record.objects.filter(pk__in=record_ids).values_list("pk", "folder_id"))

    user_levels: dict[tuple[int, int], str] = {}
    group_levels: dict[tuple[int, int], str] = {}

    def keep_stronger(levels: dict, key: tuple[int, int], access: str) -> None:
        if ACCESS_RANK[access] > ACCESS_RANK.get(levels.get(key), 0):
            levels[key] = access

    for record_id, user_id, access in RecordShare.objects.filter(
        record_id__in=record_ids
    ).values_list("record_id", "user_id", "access"):
        keep_stronger(user_levels, (record_id, user_id), access)

    records_by_folder: dict[int, list[int]] = {}
    for record_id, folder_id in folder_of.items():
        if folder_id is not None:
            records_by_folder.setdefault(folder_id, []).append(record_id)
    for folder_id, user_id, group_id, access in FolderMembership.objects.filter(
        folder_id__in=records_by_folder
    ).values_list("folder_id", "user_id", "group_id", "access"):
        for record_id in records_by_folder[folder_id]:
            if user_id is not None:
                keep_stronger(user_levels, (record_id, user_id), access)
            else:
                keep_stronger(group_levels, (record_id, group_id), access)

    content_type = ContentType.objects.get_for_model(Record)
    permissions = _record_permissions(content_type)
    _clear_record_permissions(record_ids)
    UserObjectPermission.objects.bulk_create(
        UserObjectPermission(
            content_type=content_type,
            object_pk=str(record_id),
            user_id=user_id,
            permission=permissions[codename],
        )
        for (record_id, user_id), access in user_levels.items()
        for codename in PERMISSIONS_BY_ACCESS[access]
    )
    GroupObjectPermission.objects.bulk_create(
        GroupObjectPermission(
            content_type=content_type,
            object_pk=str(record_id),
            group_id=group_id,
            permission=permissions[codename],
        )
        for (record_id, group_id), access in group_levels.items()
        for codename in PERMISSIONS_BY_ACCESS[access]
    )
    # Whoever just lost the right to view these records' recordings loses their
    # record key shares too, and future sessions get a new record key version.
    from .key_services import record_key_shares_reconcile

    record_key_shares_reconcile(records=record_ids)
