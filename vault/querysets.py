"""Querysets that filter by object-level rights in SQL."""

from __future__ import annotations

from django.db import models
from guardian.shortcuts import get_objects_for_user


class RecordQuerySet(models.QuerySet):
    """Records, restrictable to those a user holds a right on."""

    def restrict(self, user, action: str = "view", *, superuser_sees_all: bool = True):
        """Records on which ``user`` holds ``action`` (view, change or share).

        The filter is a ``pk__in`` subquery over guardian's user and group
        tables, so it composes with any other filter and costs no extra query.
        ``superuser_sees_all`` is off where separation of duties applies
        (viewing recordings): there a superuser needs a real share.
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if superuser_sees_all and user.is_superuser:
            return self
        allowed = get_objects_for_user(
            user,
            f"vault.{action}_record",
            klass=self.model.objects.all(),
            accept_global_perms=False,
            with_superuser=False,
        )
        return self.filter(pk__in=allowed.values("pk"))
