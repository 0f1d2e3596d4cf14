"""Serializers of the vault API.

Serializers shape and type-check input; they never write. Views hand the
validated data to :mod:`vault.services`, which enforces the model invariants
(the protocol matrix among them) and audits the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vault.access import rules
from vault.choices import AccessLevel
from vault.models import FolderMembership, PamConfiguration, Record, RecordShare, SharedFolder

User = get_user_model()


def _request_user(serializer: serializers.Serializer):
    request = serializer.context.get("request")
    return getattr(request, "user", None)


# ------------------------------------------------------------------ caller & tokens


class MeSerializer(serializers.ModelSerializer):
    """The caller: identity, and the policies its roles give it."""

    policies = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "email", "is_staff",
                  "is_superuser", "policies"]
        read_only_fields = fields

    def get_policies(self, user) -> list[str]:
        return sorted(rules().user_policies(user))


class AuthTokenCredentialsSerializer(serializers.Serializer):
    """Credentials exchanged for an API token."""

    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class AuthTokenSerializer(serializers.Serializer):
    """An API token: send it as ``Authorization: Token <token>``."""

    token = serializers.CharField(read_only=True)
    user_id = serializers.IntegerField(read_only=True)


# -------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordRights:
    """What the caller may do with a set of records, computed once per page."""

    configurable: frozenset[int] = field(default_factory=frozenset)
    shareable: frozenset[int] = field(default_factory=frozenset)
    recordings_viewable: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def for_records(cls, user, record_ids: list[int]) -> RecordRights:
        """Three queries (plus the caller's policies), whatever the number of records."""

        def among(queryset) -> frozenset[int]:
            return frozenset(queryset.filter(pk__in=record_ids).values_list("pk", flat=True))

        return cls(
            configurable=among(rules().records_configurable_by(user)),
            shareable=among(Record.objects.restrict(user, "share")),
            recordings_viewable=among(rules().records_with_viewable_recordings(user)),
        )


class RecordPermissionsSerializer(serializers.Serializer):
    """What the caller may do with the record."""

    can_configure = serializers.BooleanField(
        help_text="The caller may change or delete the record's connection and PAM settings."
    )
    can_share = serializers.BooleanField(help_text="The caller may share the record with others.")
    can_view_recordings = serializers.BooleanField(
        help_text="The caller may list, play and download the record's session recordings."
    )


class RecordSerializer(serializers.ModelSerializer):
    """A resource record with its PAM settings and the caller's rights on it.

    ``configuration`` and ``folder`` accept only objects the caller can see; the
    protocol matrix (which protocols a type takes, which protocols can be recorded
    as text) is enforced when the record is saved and reported on the field at fault.
    """

    port = serializers.IntegerField(min_value=1, max_value=65535, allow_null=True,
                                    required=False)
    configuration = serializers.PrimaryKeyRelatedField(queryset=PamConfiguration.objects.none())
    configuration_name = serializers.CharField(source="configuration.name", read_only=True)
    folder = serializers.PrimaryKeyRelatedField(
        queryset=SharedFolder.objects.none(), allow_null=True, required=False
    )
    folder_name = serializers.CharField(source="folder.name", read_only=True, allow_null=True,
                                        default=None)
    permissions = serializers.SerializerMethodField()

    class Meta:
        model = Record
        fields = [
            "id",
            "name",
            "record_type",
            "protocol",
            "host",
            "port",
            "url",
            "configuration",
            "configuration_name",
            "folder",
            "folder_name",
            "graphical_recording",
            "text_recording",
            "notes",
            "created_at",
            "updated_at",
            "permissions",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        user = _request_user(self)
        fields["configuration"].queryset = rules().configurations_visible_to(user)
        fields["folder"].queryset = rules().folders_visible_to(user)
        return fields

    @extend_schema_field(RecordPermissionsSerializer)
    def get_permissions(self, record: Record) -> dict[str, bool]:
        rights: RecordRights | None = self.context.get("record_rights")
        if rights is None:
            # Outside the viewset (which computes rights once per page) fall back to
            # asking for this one record.
            rights = RecordRights.for_records(_request_user(self), [record.pk])
        return {
            "can_configure": record.pk in rights.configurable,
            "can_share": record.pk in rights.shareable,
            "can_view_recordings": record.pk in rights.recordings_viewable,
        }


class ConfigurationRecordingSerializer(serializers.Serializer):
    """The PAM configuration's side of the recording rule."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    allow_graphical_recording = serializers.BooleanField()
    allow_text_recording = serializers.BooleanField()


class RecordRecordingSettingsSerializer(serializers.Serializer):
    """The record's own PAM settings."""

    graphical_recording = serializers.BooleanField()
    text_recording = serializers.BooleanField()


class ProtocolSupportSerializer(serializers.Serializer):
    """What the protocol can be recorded as."""

    graphical = serializers.BooleanField()
    text = serializers.BooleanField()


class EffectiveRecordingSerializer(serializers.Serializer):
    """What a record's sessions will record: configuration allows ∧ record enables ∧
    protocol supports, with the reason for each kind."""

    graphical = serializers.BooleanField()
    text = serializers.BooleanField()
    graphical_reason = serializers.CharField()
    text_reason = serializers.CharField()
    protocol = serializers.CharField()
    protocol_supports = ProtocolSupportSerializer()
    configuration = ConfigurationRecordingSerializer()
    record = RecordRecordingSettingsSerializer()


class RecordShareSerializer(serializers.ModelSerializer):
    """A record shared directly with one user."""

    username = serializers.CharField(source="user.username", read_only=True)
    granted_by_username = serializers.CharField(
        source="granted_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = RecordShare
        fields = ["id", "user", "username", "access", "granted_by", "granted_by_username",
                  "created_at"]
        read_only_fields = fields


class RecordShareGrantSerializer(serializers.Serializer):
    """Share a record with a user, or change the access level of their share."""

    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True))
    access = serializers.ChoiceField(choices=AccessLevel.choices)


# ------------------------------------------------------------------- configurations


class PamConfigurationSerializer(serializers.ModelSerializer):
    """A PAM configuration: how a gateway reaches resources and what it may record."""

    record_count = serializers.IntegerField(
        read_only=True, help_text="Records using this configuration that the caller can see."
    )

    class Meta:
        model = PamConfiguration
        fields = [
            "id",
            "name",
            "description",
            "environment",
            "network_cidr",
            "connections_enabled",
            "tunneling_enabled",
            "allow_graphical_recording",
            "allow_text_recording",
            "record_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "record_count", "created_at", "updated_at"]


# -------------------------------------------------------------------------- folders


class SharedFolderSerializer(serializers.ModelSerializer):
    """A shared folder with its size and whether the caller may manage it."""

    record_count = serializers.IntegerField(read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    can_manage = serializers.BooleanField(
        read_only=True,
        help_text="The caller may rename or delete the folder and change its members.",
    )

    class Meta:
        model = SharedFolder
        fields = ["id", "name", "description", "record_count", "member_count", "can_manage",
                  "created_at"]
        read_only_fields = ["id", "record_count", "member_count", "can_manage", "created_at"]


class FolderMembershipSerializer(serializers.ModelSerializer):
    """A user or a group given access to every record of a folder."""

    username = serializers.CharField(source="user.username", read_only=True, allow_null=True,
                                     default=None)
    group_name = serializers.CharField(source="group.name", read_only=True, allow_null=True,
                                       default=None)

    class Meta:
        model = FolderMembership
        fields = ["id", "folder", "user", "username", "group", "group_name", "access",
                  "created_at"]
        read_only_fields = fields


class FolderMemberSetSerializer(serializers.Serializer):
    """Add a user or a group to a folder, or change their access level."""

    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )
    group = serializers.PrimaryKeyRelatedField(
        queryset=Group.objects.all(), required=False, allow_null=True
    )
    access = serializers.ChoiceField(choices=AccessLevel.choices)

    def validate(self, attrs: dict) -> dict:
        if (attrs.get("user") is None) == (attrs.get("group") is None):
            raise serializers.ValidationError(
                "Name either a user or a group (exactly one of them)."
            )
        return attrs
