"""django-filter FilterSets of the roles API."""

from __future__ import annotations

import django_filters

from .models import Role


class RoleFilterSet(django_filters.FilterSet):
    """Filters of ``/api/v1/roles/``: by policy held, and by member."""

    user = django_filters.NumberFilter(field_name="users", label="Roles held by this user id.")
    group = django_filters.NumberFilter(field_name="groups",
                                        label="Roles held by this group id.")

    class Meta:
        model = Role
        fields = [
            "can_configure_connections",
            "can_view_recordings",
            "can_configure_remote_browsing",
            "can_view_rbi_recordings",
            "user",
            "group",
        ]
