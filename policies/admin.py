"""Admin Console → Roles: the enforcement policies and who holds them.

Roles decide who may configure records and who may view recordings, so only
superusers see and change them. Saves and deletes go through
:mod:`policies.services`, which write one audit row per change, members
included.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest

from vault.admin import adopt, is_superuser_request, model_fields

from . import services
from .choices import Policy
from .models import Role

POLICY_FIELDS: list[str] = list(Policy.values)


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    """Roles with their Privileged Access Manager enforcement policies and members."""

    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        (
            "Privileged Access Manager",
            {
                "fields": POLICY_FIELDS,
                "description": "Enforcement policies held by every member of this role. "
                "Viewing recordings also needs access to the record; changes apply to "
                "members' next request.",
            },
        ),
        ("Members", {"fields": ["users", "groups"]}),
    ]
    filter_horizontal = ["users", "groups"]
    list_display = ["name", *POLICY_FIELDS, "user_count", "group_count"]
    list_filter = POLICY_FIELDS
    search_fields = ["name", "description"]
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(
            user_count=Count("users", distinct=True),
            group_count=Count("groups", distinct=True),
        )

    @admin.display(description="users", ordering="user_count")
    def user_count(self, obj: Role) -> int:
        return obj.user_count

    @admin.display(description="groups", ordering="group_count")
    def group_count(self, obj: Role) -> int:
        return obj.group_count

    # Enforcement policies are superuser business; Django model permissions are ignored.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser_request(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_superuser_request(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser_request(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_superuser_request(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_superuser_request(request)

    def save_model(self, request: HttpRequest, obj: Role, form, change: bool) -> None:
        # Members are passed to the service here, so that the role and its members
        # change in one audited step (save_related does not set them again).
        fields = model_fields(form, Role)
        members = {name: form.cleaned_data[name] for name in ("users", "groups")
                   if name in form.cleaned_data}
        if change:
            services.role_update(role=obj, acting_user=request.user, **members, **fields)
        else:
            adopt(obj, services.role_create(acting_user=request.user, **members, **fields))

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        # No form.save_m2m(): the service already set users and groups.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(role=obj, acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        with transaction.atomic():
            for role in queryset:
                if not self.has_delete_permission(request, role):
                    raise PermissionDenied
                services.role_delete(role=role, acting_user=request.user)
