"""Writes to roles: validated, audited, effective at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from vault.choices import AuditAction
from vault.key_services import record_key_shares_reconcile
from vault.models import Record
from vault.services import audit_event_write, snapshot

from .models import Role


def _members(role: Role) -> dict[str, list]:
    return {
        "users": sorted(role.users.values_list("username", flat=True)),
        "groups": sorted(role.groups.values_list("name", flat=True)),
    }


@transaction.atomic
def role_create(*, acting_user, users: Iterable = (), groups: Iterable[Group] = (),
                **fields: Any) -> Role:
    """Create a role with its policies and members."""
    role = Role(**fields)
    role.full_clean()
    role.save()
    role.users.set(users)
    role.groups.set(groups)
    audit_event_write(actor=acting_user, action=AuditAction.CREATE, instance=role,
                      after={**snapshot(role), **_members(role)})
    return role


@transaction.atomic
def role_update(*, role: Role, acting_user, users: Iterable | None = None,
                groups: Iterable[Group] | None = None, **fields: Any) -> Role:
    """Change a role's policies or members; the change applies to the next request."""
    before = {**snapshot(Role.objects.get(pk=role.pk)), **_members(role)}
    for name, value in fields.items():
        setattr(role, name, value)
    role.full_clean()
    role.save()
    if users is not None:
        role.users.set(users)
    if groups is not None:
        role.groups.set(groups)
    after = {**snapshot(role), **_members(role)}
    changed = {k for k in after if before.get(k) != after.get(k)}
    if changed:
        audit_event_write(
            actor=acting_user, action=AuditAction.UPDATE, instance=role,
            before={k: before.get(k) for k in changed}, after={k: after[k] for k in changed},
        )
        # A dropped policy or member may end someone's right to view recordings.
        record_key_shares_reconcile(records=Record.objects.filter(keys__isnull=False),
                                    acting_user=acting_user)
    return role


@transaction.atomic
def role_delete(*, role: Role, acting_user) -> None:
    """Delete a role: its members lose its policies at once."""
    audit_event_write(actor=acting_user, action=AuditAction.DELETE, instance=role,
                      before={**snapshot(role), **_members(role)})
    role.delete()
    record_key_shares_reconcile(records=Record.objects.filter(keys__isnull=False),
                                acting_user=acting_user)
