"""The console's view of the recordings app."""

from django.contrib import admin

from .models import SignerKey


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
