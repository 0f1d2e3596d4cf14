"""The console's view of the recordings app."""

from django.contrib import admin, messages

from vault.choices import AuditAction
from vault.services import audit_event_write

from . import services
from .models import Gateway, GatewayCredential, Session, SignerKey


@admin.register(SignerKey)
class SignerKeyAdmin(admin.ModelAdmin):
    """Trusted sealer keys: read-only (workers register them; rotation is a command)."""

    list_display = ["key_id", "public_key", "created_at", "retired_at"]
    list_filter = ["retired_at"]
    search_fields = ["key_id"]
    readonly_fields = ["key_id", "public_key", "created_at", "retired_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class GatewayCredentialInline(admin.TabularInline):
    """A gateway's credentials: prefix and dates only (the token is shown once, at issue)."""

    model = GatewayCredential
    extra = 0
    can_delete = False
    fields = ["prefix", "label", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    """Register gateways, bind them to PAM configurations, issue and revoke credentials."""

    list_display = ["name", "created_at", "last_seen_at"]
    search_fields = ["name"]
    filter_horizontal = ["configurations"]
    readonly_fields = ["created_at", "last_seen_at"]
    inlines = [GatewayCredentialInline]
    actions = ["issue_credential"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj.save()
            audit_event_write(actor=request.user, action=AuditAction.UPDATE, instance=obj,
                              after={"name": obj.name})
            return
        created = services.gateway_create(name=obj.name, description=obj.description,
                                          acting_user=request.user)
        obj.pk = created.pk
        obj._state.adding, obj._state.db = False, created._state.db
        self._show_token(request, created)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)

    def _show_token(self, request, gateway: Gateway) -> None:
        _, token = services.gateway_credential_issue(gateway=gateway, acting_user=request.user)
        messages.warning(
            request,
            f"API credential for {gateway}: {token} — copy it now, it is not shown again.",
        )

    @admin.action(description="Issue a new API credential (shown once)")
    def issue_credential(self, request, queryset) -> None:
        for gateway in queryset:
            self._show_token(request, gateway)


@admin.register(GatewayCredential)
class GatewayCredentialAdmin(admin.ModelAdmin):
    """Credentials can only be revoked here (issue them from the gateway)."""

    list_display = ["gateway", "prefix", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["gateway", "prefix", "label", "created_at", "last_used_at", "revoked_at"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke the selected credentials")
    def revoke(self, request, queryset) -> None:
        for credential in queryset:
            services.gateway_credential_revoke(credential=credential, acting_user=request.user)
        messages.success(request, "Revoked.")


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    """Sessions and their sealing state (read-only: gateways and the sealer write them)."""

    list_display = ["id", "record", "launched_by", "protocol", "started_at", "ended_at",
                    "status", "gateway"]
    list_filter = ["status", "protocol", "gateway"]
    search_fields = ["launched_by", "record__name"]
    list_select_related = ["record", "gateway"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Session._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
