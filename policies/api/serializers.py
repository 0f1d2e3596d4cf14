"""Serializers of the roles and policies API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework import serializers

from policies.models import Role

User = get_user_model()


class RolePoliciesSerializer(serializers.Serializer):
    """The four enforcement policies a role carries, as one object."""

    can_configure_connections = serializers.BooleanField(read_only=True)
    can_view_recordings = serializers.BooleanField(read_only=True)
    can_configure_remote_browsing = serializers.BooleanField(read_only=True)
    can_view_rbi_recordings = serializers.BooleanField(read_only=True)


class RoleSerializer(serializers.ModelSerializer):
    """A role: its policies (as an object, and as writable flat booleans) and its members."""

    policies = RolePoliciesSerializer(source="*", read_only=True)
    users = serializers.PrimaryKeyRelatedField(
        many=True, queryset=User.objects.all(), required=False,
        help_text="Ids of the users holding the role directly.",
    )
    groups = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Group.objects.all(), required=False,
        help_text="Ids of the groups whose members hold the role.",
    )

    class Meta:
        model = Role
        fields = [
            "id",
            "name",
            "description",
            "policies",
            "can_configure_connections",
            "can_view_recordings",
            "can_configure_remote_browsing",
            "can_view_rbi_recordings",
            "users",
            "groups",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class PolicySerializer(serializers.Serializer):
    """One enforcement policy a role can carry."""

    value = serializers.CharField(help_text="The policy's name in role objects.")
    label = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=[("configure", "Configure"), ("view_recordings", "View recordings")]
    )
    record_types = serializers.ListField(
        child=serializers.CharField(), help_text="The record types the policy governs."
    )
