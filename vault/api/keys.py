"""Key-management API: the caller's key, their record key shares, and pending grants.

Only public keys and wrapped keys cross this API. Wrapping and unwrapping
happen in the browser or the CLI (FORMAT.md §6).
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vault import key_selectors, key_services
from vault.models import RecordKeyShare, UserKey

# ------------------------------------------------------------------ serializers


class ProtectedPrivateKeySerializer(serializers.Serializer):
    """The §6 JSON: the private key under a passphrase-derived key (opaque to the server)."""

    kdf = serializers.CharField()
    iterations = serializers.IntegerField()
    salt = serializers.CharField()
    nonce = serializers.CharField()
    ct = serializers.CharField()


class UserKeySerializer(serializers.ModelSerializer):
    """The caller's enrolled key."""

    protected_private_key = ProtectedPrivateKeySerializer()

    class Meta:
        model = UserKey
        fields = ["public_key", "protected_private_key", "key_id", "created_at", "updated_at"]
        read_only_fields = fields


class UserKeyInputSerializer(serializers.Serializer):
    """Enrolment or passphrase change, as made by the client."""

    public_key = serializers.CharField(
        help_text="b64u DER SubjectPublicKeyInfo of the P-256 public key."
    )
    protected_private_key = serializers.JSONField(
        help_text='{"kdf": "pbkdf2-sha256", "iterations": N ≥ 1000000, "salt", "nonce", "ct"}'
    )
    reset = serializers.BooleanField(
        default=False,
        help_text="Replace a key that has record key shares: they are deleted and become "
        "pending grants again.",
    )


class RecordKeyShareSerializer(serializers.ModelSerializer):
    """One of the caller's record key shares."""

    record_key_id = serializers.CharField(source="record_key.key_id")
    version = serializers.IntegerField(source="record_key.version")
    public_key = serializers.CharField(source="record_key.public_key")
    retired = serializers.SerializerMethodField()

    class Meta:
        model = RecordKeyShare
        fields = ["record_key_id", "version", "public_key", "share", "retired"]
        read_only_fields = fields

    def get_retired(self, share: RecordKeyShare) -> bool:
        return share.record_key.retired_at is not None


class PendingGrantSerializer(serializers.Serializer):
    """A share the caller's client can re-wrap for another user."""

    record = serializers.IntegerField(source="record.pk")
    record_name = serializers.CharField(source="record.name")
    record_key_id = serializers.CharField(source="record_key.key_id")
    version = serializers.IntegerField(source="record_key.version")
    user = serializers.IntegerField(source="user_key.user_id")
    username = serializers.CharField(source="user_key.user.username")
    user_public_key = serializers.CharField(source="user_key.public_key")


class GrantItemSerializer(serializers.Serializer):
    record_key_id = serializers.RegexField(r"^[0-9a-f]{64}$")
    user = serializers.IntegerField()
    share = serializers.CharField(help_text="b64u(HPKE enc ‖ ciphertext), FORMAT.md §6.")


class GrantInputSerializer(serializers.Serializer):
    shares = GrantItemSerializer(many=True, allow_empty=False, max_length=1000)


class GrantResultSerializer(serializers.Serializer):
    record_key_id = serializers.CharField()
    user = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["granted", "already granted"])


# ------------------------------------------------------------------------ views


class MyKeyView(APIView):
    """The caller's key pair: public key and passphrase-protected private key."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserKeySerializer,
                              404: OpenApiResponse(description="No key enrolled yet.")})
    def get(self, request: Request) -> Response:
        user_key = key_selectors.user_key_of(request.user)
        if user_key is None:
            return Response({"detail": "No key enrolled yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(UserKeySerializer(user_key).data)

    @extend_schema(
        request=UserKeyInputSerializer,
        responses={200: UserKeySerializer, 201: UserKeySerializer,
                   409: OpenApiResponse(description="A different key while shares exist.")},
    )
    def put(self, request: Request) -> Response:
        data = UserKeyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user_key, created = key_services.user_key_set(user=request.user, **data.validated_data)
        except key_services.UserKeyChangeRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(UserKeySerializer(user_key).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RecordKeyShareListView(generics.ListAPIView):
    """The caller's shares of a record's keys (all versions); 404 without the right to view
    the record's recordings."""

    permission_classes = [IsAuthenticated]
    serializer_class = RecordKeyShareSerializer
    filter_backends: list = []
    queryset = RecordKeyShare.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        record = key_selectors.record_for_key_shares(self.request.user, self.kwargs["pk"])
        if record is None:
            raise Http404
        return key_selectors.record_key_shares_of(self.request.user, record)


class PendingGrantListView(generics.ListAPIView):
    """Users waiting for a record key share that the caller's client can re-wrap."""

    permission_classes = [IsAuthenticated]
    serializer_class = PendingGrantSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return []
        return key_selectors.pending_grants_for(self.request.user)


class GrantCreateView(APIView):
    """Store record key shares the caller's client re-wrapped for pending users.

    201 if any share was stored, 200 if every one already existed. All or
    nothing: an invalid item rejects the request (400, errors keyed by index).
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=GrantInputSerializer,
        responses={
            200: inline_serializer("GrantResults", {"results": GrantResultSerializer(many=True)}),
            201: inline_serializer("GrantResultsCreated",
                                   {"results": GrantResultSerializer(many=True)}),
        },
    )
    def post(self, request: Request) -> Response:
        data = GrantInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        results = key_services.record_key_shares_grant(
            acting_user=request.user, shares=data.validated_data["shares"]
        )
        created = any(r.status == "granted" for r in results)
        return Response(
            {"results": GrantResultSerializer(results, many=True).data},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
