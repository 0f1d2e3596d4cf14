"""The admin console for the vault: PAM configurations, records, shared folders, audit.

Who may do what is decided by the enforcement policies (``rules()``, i.e.
``policies.selectors``), not by Django's model permissions: a staff user
needs no ``vault.*`` model permission, and one holding such permissions but
no policy still cannot configure anything. Every save and delete goes
through :mod:`vault.services`, so the admin leaves the same audit rows as the
API and refuses the same things.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count, Exists, OuterRef, Value
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from . import key_services, services
from .access import rules
from .choices import RecordType
from .forms import RecordAdminForm
from .models import (
    AuditEvent,
    FolderMembership,
    PamConfiguration,
    Record,
    RecordShare,
    SharedFolder,
)

T = TypeVar("T")


# ------------------------------------------------------------------- plumbing


def _per_request(request: HttpRequest, key: Any, compute: Callable[[], T]) -> T:
    """Answer a rules question once per request.

    The admin asks "may this user add/change/…" many times while rendering one
    page; remembering the answer for the request keeps the query count of a
    page constant and small, while a role change still applies on the next
    request.
    """
    memo = request.__dict__.setdefault("_keeperpam_admin_rules", {})
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def is_staff_request(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def is_superuser_request(request: HttpRequest) -> bool:
    return is_staff_request(request) and request.user.is_superuser


def configurable_types(request: HttpRequest) -> tuple[str, ...]:
    """Record types the requesting user may create and configure."""
    if not is_staff_request(request):
        return ()
    return _per_request(
        request, "types", lambda: tuple(rules().configurable_record_types(request.user))
    )


def may_configure_configurations(request: HttpRequest) -> bool:
    """Whether the requesting user may add, change and delete PAM configurations."""
    return is_staff_request(request) and _per_request(
        request, "configurations", lambda: rules().may_configure_configurations(request.user)
    )


def may_configure_record(request: HttpRequest, record: Record) -> bool:
    """Whether the requesting user may change or delete ``record``."""
    return is_staff_request(request) and _per_request(
        request, ("record", record.pk), lambda: rules().may_configure_record(request.user, record)
    )


def may_share_record(request: HttpRequest, record: Record) -> bool:
    """Whether the requesting user may change ``record``'s direct shares."""
    return is_staff_request(request) and _per_request(
        request, ("share", record.pk), lambda: rules().may_share_record(request.user, record)
    )


def model_fields(form, model: type[models.Model]) -> dict[str, Any]:
    """The cleaned values of ``form``'s concrete (non-M2M) model fields, for a service."""
    names = {f.name for f in model._meta.concrete_fields}
    return {name: value for name, value in form.cleaned_data.items() if name in names}


def adopt(target: models.Model, source: models.Model) -> None:
    """Make the admin's unsaved form instance the row a service just created.

    The admin keeps using the instance it handed to ``save_model`` (to save
    inlines, log the addition and redirect), so it has to become that row.
    """
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


class ServiceDeletesMixin:
    """Route single and bulk deletes through a service so that each one is audited."""

    #: ``(request, obj) -> None``: the service call that deletes one object.
    delete_with_service: Callable[..., None]

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        self.delete_with_service(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        # The bulk action already checked each object; check again, since a
        # silent skip would be worse than a refusal.
        with transaction.atomic():
            for obj in queryset:
                if not self.has_delete_permission(request, obj):
                    raise PermissionDenied
                self.delete_with_service(request, obj)


# ------------------------------------------------------------------ PAM configurations


@admin.register(PamConfiguration)
class PamConfigurationAdmin(ServiceDeletesMixin, admin.ModelAdmin):
    """PAM configurations: gateway reach and what sessions may be recorded."""

    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        (
            "Gateway",
            {"fields": ["environment", "network_cidr", "connections_enabled",
                        "tunneling_enabled"]},
        ),
        (
            "Session recording",
            {
                "fields": ["allow_graphical_recording", "allow_text_recording"],
                "description": "What records using this configuration may record; each "
                "record then switches recording on in its PAM settings.",
            },
        ),
    ]
    list_display = [
        "name",
        "environment",
        "network_cidr",
        "connections_enabled",
        "tunneling_enabled",
        "allow_graphical_recording",
        "allow_text_recording",
        "record_count",
    ]
    list_filter = [
        "environment",
        "connections_enabled",
        "tunneling_enabled",
        "allow_graphical_recording",
        "allow_text_recording",
    ]
    search_fields = ["name", "description", "network_cidr"]
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest):
        return rules().configurations_visible_to(request.user).annotate(
            record_count=Count("records")
        )

    @admin.display(description="records", ordering="record_count")
    def record_count(self, obj: PamConfiguration) -> int:
        return obj.record_count

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_staff_request(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        # The queryset already holds only the configurations the user may see.
        return is_staff_request(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_configure_configurations(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return may_configure_configurations(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return may_configure_configurations(request)

    def save_model(self, request: HttpRequest, obj: PamConfiguration, form, change: bool) -> None:
        fields = model_fields(form, PamConfiguration)
        if change:
            services.configuration_update(
                configuration=obj, acting_user=request.user, **fields
            )
        else:
            adopt(obj, services.configuration_create(acting_user=request.user, **fields))

    def delete_with_service(self, request: HttpRequest, obj: PamConfiguration) -> None:
        services.configuration_delete(configuration=obj, acting_user=request.user)


# ---------------------------------------------------------------------------- records


class RecordShareInline(admin.TabularInline):
    """Direct shares of a record; granted and revoked through the share services."""

    model = RecordShare
    fk_name = "record"
    fields = ["user", "access", "granted_by"]
    readonly_fields = ["granted_by"]
    extra = 0
    verbose_name = "direct share"
    verbose_name_plural = "Direct shares"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("user", "granted_by")

    def _may_share(self, request: HttpRequest, obj: Record | None) -> bool:
        if obj is None:
            # Whoever creates a record gets full rights on it, sharing included.
            return bool(configurable_types(request))
        return may_share_record(request, obj)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        # Who else holds a record is for those who may share it.
        return self._may_share(request, obj)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_share(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_share(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_share(request, obj)


@admin.register(Record)
class RecordAdmin(ServiceDeletesMixin, admin.ModelAdmin):
    """Resource records with their connection and PAM settings.

    Staff see the records they have access to; they change only those their
    configure policies and edit access allow (``may_configure_record``), and
    see the others read-only.
    """

    form = RecordAdminForm
    inlines = [RecordShareInline]
    fieldsets = [
        ("Record", {"fields": ["name", "record_type", "protocol", "folder", "notes"]}),
        ("Connection", {"fields": ["host", "port", "url", "configuration"]}),
        (
            "PAM Settings",
            {
                "fields": ["graphical_recording", "text_recording", "effective_recording"],
                "description": "A session is recorded only where the PAM configuration "
                "allows it, this record switches it on and the protocol can do it.",
            },
        ),
        ("Access", {"fields": ["recordings_viewable", "created_by", "created_at",
                               "updated_at"]}),
    ]
    readonly_fields = [
        "effective_recording",
        "recordings_viewable",
        "created_by",
        "created_at",
        "updated_at",
    ]
    list_display = [
        "name",
        "record_type",
        "protocol",
        "target",
        "configuration",
        "folder",
        "graphical_recording",
        "text_recording",
        "recordings_viewable",
    ]
    list_filter = [
        "record_type",
        "protocol",
        ("configuration", RelatedOnlyFieldListFilter),
        ("folder", RelatedOnlyFieldListFilter),
        "graphical_recording",
        "text_recording",
    ]
    list_select_related = ["configuration", "folder"]
    search_fields = ["name", "host", "url"]
    autocomplete_fields = ["configuration", "folder"]
    ordering = ["name", "id"]

    class Media:
        js = ["vault/admin/record_form.js"]

    # -- what the user sees

    def get_queryset(self, request: HttpRequest):
        queryset = rules().records_visible_to(request.user).select_related(
            "configuration", "folder", "created_by"
        )
        viewable = _per_request(
            request, "viewable", lambda: rules().records_with_viewable_recordings(request.user)
        )
        # One EXISTS per page instead of a may_view_recordings() call per row.
        if viewable.query.is_empty():
            return queryset.annotate(recordings_viewable=Value(False))
        return queryset.annotate(
            recordings_viewable=Exists(viewable.filter(pk=OuterRef("pk")))
        )

    @admin.display(description="host / URL")
    def target(self, obj: Record) -> str:
        if obj.record_type == RecordType.REMOTE_BROWSING:
            return obj.url
        return f"{obj.host}:{obj.port}" if obj.port else obj.host

    @admin.display(description="recordings viewable by you", boolean=True)
    def recordings_viewable(self, obj: Record) -> bool | None:
        return getattr(obj, "recordings_viewable", None)

    @admin.display(description="effective recording")
    def effective_recording(self, obj: Record | None) -> str:
        if obj is None or obj.pk is None:
            return "Shown once the record is saved."
        effective = obj.effective_recording()
        return format_html_join(
            "",
            "<div>{}: <strong>{}</strong> — {}</div>",
            [
                ("Graphical", "recorded" if effective.graphical else "not recorded",
                 effective.graphical_reason),
                ("Text", "recorded" if effective.text else "not recorded",
                 effective.text_reason),
            ],
        )

    # -- what the user may do

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_staff_request(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        # Any staff user may look; the queryset holds only records they can access,
        # so others answer "doesn't exist".
        return is_staff_request(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(configurable_types(request))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is None:
            return bool(configurable_types(request))
        return may_configure_record(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    # -- the form

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        # Who may view recordings and who made the record mean nothing before it exists.
        return fieldsets if obj is not None else [f for f in fieldsets if f[0] != "Access"]

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # A fresh class per request: safe to tell it what this user may configure.
        form.configurable_record_types = configurable_types(request)
        return form

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "configuration":
            kwargs["queryset"] = rules().configurations_visible_to(request.user)
        elif db_field.name == "folder":
            # Filing a record in a folder shares it with the folder's members:
            # only folders the editor belongs to are offered.
            kwargs["queryset"] = rules().folders_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # -- saving through services

    def save_model(self, request: HttpRequest, obj: Record, form, change: bool) -> None:
        fields = model_fields(form, Record)
        if change:
            if not may_configure_record(request, obj):
                raise PermissionDenied
            services.record_update(record=obj, acting_user=request.user, **fields)
        else:
            if fields.get("record_type") not in configurable_types(request):
                raise PermissionDenied
            adopt(obj, services.record_create(acting_user=request.user, **fields))

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not RecordShare:
            super().save_formset(request, form, formset, change)
            return
        record = form.instance
        # commit=False fills new/changed/deleted_objects (the change message needs
        # them) without writing anything; the services do the writing.
        formset.save(commit=False)
        for share in formset.deleted_objects:
            services.record_share_revoke(
                share=RecordShare.objects.get(pk=share.pk), acting_user=request.user
            )
        for share, changed in formset.changed_objects:
            if "user" in changed:
                services.record_share_revoke(
                    share=RecordShare.objects.get(pk=share.pk), acting_user=request.user
                )
            services.record_share_grant(
                record=record, user=share.user, access=share.access, acting_user=request.user
            )
        for share in formset.new_objects:
            services.record_share_grant(
                record=record, user=share.user, access=share.access, acting_user=request.user
            )

    def delete_with_service(self, request: HttpRequest, obj: Record) -> None:
        services.record_delete(record=obj, acting_user=request.user)


# ---------------------------------------------------------------------- shared folders


class FolderMembershipInline(admin.TabularInline):
    """Members of a shared folder; set and removed through the folder services."""

    model = FolderMembership
    fields = ["user", "group", "access"]
    extra = 0
    verbose_name = "member"
    verbose_name_plural = "Members (a user or a group per line)"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("user", "group")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_staff_request(request)

    # ``obj`` is the folder: whoever may manage it (API and admin alike) edits its members.
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_manage_folder(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_manage_folder(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_manage_folder(request, obj)


def _may_manage_folder(request: HttpRequest, folder: SharedFolder | None) -> bool:
    """Superusers, or members holding *share* access to ``folder`` (``may_manage_folder``)."""
    if is_superuser_request(request):
        return True
    return folder is not None and is_staff_request(request) and rules().may_manage_folder(
        request.user, folder
    )


@admin.register(SharedFolder)
class SharedFolderAdmin(ServiceDeletesMixin, admin.ModelAdmin):
    """Shared folders and their members.

    Membership hands out access to every record in the folder, which no
    enforcement policy covers: superusers create and delete folders, members
    with *share* access manage one's name and members (as in the API), other
    staff see the folders they belong to, read-only.
    """

    inlines = [FolderMembershipInline]
    fields = ["name", "description"]
    list_display = ["name", "record_count", "member_count"]
    search_fields = ["name", "description"]
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest):
        # Count over a pk__in subquery: counting on the (joined, distinct) visibility
        # filter itself would count only the requesting user's memberships.
        visible = rules().folders_visible_to(request.user).values("pk")
        return SharedFolder.objects.filter(pk__in=visible).annotate(
            record_count=Count("records", distinct=True),
            member_count=Count("memberships", distinct=True),
        )

    @admin.display(description="records", ordering="record_count")
    def record_count(self, obj: SharedFolder) -> int:
        return obj.record_count

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: SharedFolder) -> int:
        return obj.member_count

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_staff_request(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_staff_request(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser_request(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_manage_folder(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_superuser_request(request)

    def save_model(self, request: HttpRequest, obj: SharedFolder, form, change: bool) -> None:
        fields = model_fields(form, SharedFolder)
        if change:
            services.folder_update(folder=obj, acting_user=request.user, **fields)
        else:
            adopt(obj, services.folder_create(acting_user=request.user, **fields))

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not FolderMembership:
            super().save_formset(request, form, formset, change)
            return
        folder = form.instance
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            services.folder_member_remove(
                membership=FolderMembership.objects.get(pk=membership.pk),
                acting_user=request.user,
            )
        for membership, changed in formset.changed_objects:
            if "user" in changed or "group" in changed:
                services.folder_member_remove(
                    membership=FolderMembership.objects.get(pk=membership.pk),
                    acting_user=request.user,
                )
            services.folder_member_set(
                folder=folder, user=membership.user, group=membership.group,
                access=membership.access, acting_user=request.user,
            )
        for membership in formset.new_objects:
            services.folder_member_set(
                folder=folder, user=membership.user, group=membership.group,
                access=membership.access, acting_user=request.user,
            )

    def delete_with_service(self, request: HttpRequest, obj: SharedFolder) -> None:
        services.folder_delete(folder=obj, acting_user=request.user)


# ------------------------------------------------------------------------- audit trail


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only, for superusers: nothing here can be added or edited."""

    list_display = ["created_at", "actor_repr", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type", ("actor", RelatedOnlyFieldListFilter)]
    date_hierarchy = "created_at"
    search_fields = ["object_repr", "actor_repr"]
    ordering = ["-created_at", "-id"]
    fields = [
        "created_at",
        "actor",
        "actor_repr",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "remote_addr",
        "before_pretty",
        "after_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="before")
    def before_pretty(self, obj: AuditEvent) -> str:
        return self._pretty(obj.before)

    @admin.display(description="after")
    def after_pretty(self, obj: AuditEvent) -> str:
        return self._pretty(obj.after)

    @staticmethod
    def _pretty(value: Any) -> str:
        if value is None:
            return "—"
        return format_html(
            '<pre style="margin:0">{}</pre>',
            json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False),
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser_request(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_superuser_request(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# Key material has its own console module (Django autodiscovers only admin.py).
from . import admin_keys  # noqa: E402, F401

# ------------------------------------------------------------------------------ users


class VaultUserAdmin(UserAdmin):
    """Django's user admin, plus revoking key shares the edited user may no longer hold.

    Group membership and the active flag are edited here, outside our services,
    so the reconcile that services run on every access change runs here too.
    """

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if change:
            key_services.user_key_shares_reconcile(user=form.instance, acting_user=request.user)


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), VaultUserAdmin)
