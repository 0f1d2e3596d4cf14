"""The console's view of key material: public information only, and read-only.

Imported from ``vault/admin.py`` (Django autodiscovers only ``admin.py``).
Keys are made by clients and the sealer, never in the console; the one write
here is a superuser enrolling the organisation recovery *public* key, through
:func:`vault.key_services.recovery_key_enrol`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from . import key_services
from .models import RecordKey, RecordKeyShare, RecoveryKey, UserKey


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; nobody adds, changes or deletes here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UserKey)
class UserKeyAdmin(ReadOnlyAdmin):
    """Users' enrolled public keys (the protected private key is not shown)."""

    list_display = ["user", "key_id", "created_at", "updated_at"]
    search_fields = ["user__username", "key_id"]
    fields = ["user", "key_id", "public_key", "created_at", "updated_at"]
    readonly_fields = fields
    list_select_related = ["user"]


@admin.register(RecordKey)
class RecordKeyAdmin(ReadOnlyAdmin):
    """Record key versions (public keys)."""

    list_display = ["record", "version", "key_id", "created_at", "retired_at"]
    list_filter = ["retired_at"]
    search_fields = ["record__name", "key_id"]
    fields = ["record", "version", "key_id", "public_key", "created_at", "retired_at"]
    readonly_fields = fields
    list_select_related = ["record"]


@admin.register(RecordKeyShare)
class RecordKeyShareAdmin(ReadOnlyAdmin):
    """Who holds a share of which record key (the wrapped bytes are not shown)."""

    list_display = ["record_key", "user", "recovery", "created_by", "created_at"]
    search_fields = ["record_key__record__name", "record_key__key_id", "user__username"]
    fields = ["record_key", "user", "recovery", "created_by", "created_at"]
    readonly_fields = fields
    list_select_related = ["record_key__record", "user", "recovery", "created_by"]


class RecoveryKeyForm(forms.ModelForm):
    """Paste the recovery public key; its private half stays offline with the organisation."""

    public_key_input = forms.CharField(
        label="Public key",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="P-256 public key: base64url DER SubjectPublicKeyInfo, or a PEM "
        "“PUBLIC KEY” block. Never paste a private key.",
    )

    class Meta:
        model = RecoveryKey
        fields = ["label"]

    def clean_public_key_input(self) -> str:
        text = self.cleaned_data["public_key_input"]
        if "PRIVATE KEY" in text:
            raise ValidationError("That is a private key. Paste the public key only.")
        try:
            _, key_id = key_services.public_key_parse_any(text)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["public_key"]) from exc
        if RecoveryKey.objects.filter(key_id=key_id).exists():
            raise ValidationError("This recovery key is already enrolled.")
        return text


@admin.register(RecoveryKey)
class RecoveryKeyAdmin(ReadOnlyAdmin):
    """The organisation recovery key: superusers enrol a new one (the previous one retires)."""

    list_display = ["label", "key_id", "created_by", "created_at", "retired_at"]
    readonly_fields = ["label", "key_id", "public_key", "created_by", "created_at", "retired_at"]
    form = RecoveryKeyForm

    def has_add_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["label", "public_key_input"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        # Through the service (validation, retiring the previous key, audit),
        # then hand the saved row back to the admin for its redirect and log.
        recovery = key_services.recovery_key_enrol(
            public_key=form.cleaned_data["public_key_input"],
            label=form.cleaned_data["label"],
            acting_user=request.user,
        )
        obj.__dict__.update(
            {f.attname: getattr(recovery, f.attname) for f in RecoveryKey._meta.concrete_fields}
        )
        obj._state.adding = False
        obj._state.db = recovery._state.db
