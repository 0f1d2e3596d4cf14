"""Serializers of the recordings API."""

from rest_framework import serializers

from recordings.models import SignerKey


class SignerKeySerializer(serializers.ModelSerializer):
    """A trusted sealer signing key: its id (hex SHA-256 of the raw key) and raw public key."""

    id = serializers.CharField(source="key_id")

    class Meta:
        model = SignerKey
        fields = ["id", "public_key", "created_at", "retired_at"]
        read_only_fields = fields
