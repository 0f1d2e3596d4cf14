"""Serializers of the vault API."""

from django.contrib.auth import get_user_model
from rest_framework import serializers


class MeSerializer(serializers.ModelSerializer):
    """The caller: identity, and the policies its roles give it."""

    policies = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "first_name", "last_name", "email", "is_staff",
                  "is_superuser", "policies"]
        read_only_fields = fields

    def get_policies(self, user) -> list[str]:
        from vault.access import rules

        return sorted(rules().user_policies(user))
