"""Serializers of the recordings API."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from recordings.models import Part, Session, SignerKey, Stream
from vault.choices import Protocol


class SignerKeySerializer(serializers.ModelSerializer):
    """A trusted sealer signing key: its id (hex SHA-256 of the raw key) and raw public key."""

    id = serializers.CharField(source="key_id")

    class Meta:
        model = SignerKey
        fields = ["id", "public_key", "created_at", "retired_at"]
        read_only_fields = fields


class SessionOpenSerializer(serializers.Serializer):
    """What a gateway sends to open a session."""

    record = serializers.IntegerField(help_text="The record's id.")
    protocol = serializers.ChoiceField(choices=Protocol.choices)
    launched_by = serializers.CharField(max_length=200,
                                        help_text="Username of the person who launched it.")
    started_at = serializers.DateTimeField(required=False)
    client_address = serializers.IPAddressField(required=False, allow_null=True)


class StreamPlanSerializer(serializers.Serializer):
    stream = serializers.CharField()
    formats = serializers.ListField(child=serializers.CharField())


class SessionOpenedSerializer(serializers.Serializer):
    """The server's answer: the session, its recording and what to upload where."""

    id = serializers.UUIDField()
    recording = serializers.UUIDField(allow_null=True)
    status = serializers.CharField()
    recorded = serializers.BooleanField()
    streams = StreamPlanSerializer(many=True)
    upload_url = serializers.CharField(help_text="tus endpoint (POST with Upload-Metadata "
                                       "session and format).")
    graphical_reason = serializers.CharField()
    text_reason = serializers.CharField()
    error = serializers.CharField(allow_blank=True)


class SessionCloseSerializer(serializers.Serializer):
    ended_at = serializers.DateTimeField(required=False)
    exit_status = serializers.IntegerField(required=False, allow_null=True)


class StreamSummarySerializer(serializers.ModelSerializer):
    stream = serializers.CharField(source="kind")
    parts = serializers.IntegerField(source="next_seq")

    class Meta:
        model = Stream
        fields = ["stream", "state", "parts"]
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):
    """A row of a record's Session Activity."""

    recording = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    streams = serializers.SerializerMethodField()
    gateway = serializers.CharField(source="gateway.name")

    class Meta:
        model = Session
        fields = ["id", "record", "protocol", "launched_by", "client_address", "started_at",
                  "ended_at", "duration_ms", "exit_status", "status", "error", "gateway",
                  "recording", "streams"]
        read_only_fields = fields

    def get_recording(self, session) -> str | None:
        recording = getattr(session, "recording", None)
        return str(recording.pk) if recording is not None else None

    @extend_schema_field(StreamSummarySerializer(many=True))
    def get_streams(self, session):
        recording = getattr(session, "recording", None)
        if recording is None:
            return []
        return StreamSummarySerializer(recording.streams.all(), many=True).data


class PartSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Part
        fields = ["seq", "t0", "t1", "final", "kf", "size", "sha256", "url"]
        read_only_fields = fields

    def get_url(self, part) -> str:
        request = self.context["request"]
        kwargs = self.context["url_kwargs"]
        return request.build_absolute_uri(
            reverse("session-stream-part", kwargs={**kwargs, "seq": part.seq}))
