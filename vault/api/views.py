"""Views of the vault API: the caller, tokens, records, configurations, folders and shares.

Every viewset reads through the permission-filtered selectors of
:func:`vault.access.rules` (anything outside them answers 404) and writes
through :mod:`vault.services`. An action the caller may not perform on an
object it *can* see answers 403 with the reason.
"""

from __future__ import annotations

from functools import cached_property

from django.db import transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keeperpam.api import RestrictedViewSet
from vault import services
from vault.access import rules
from vault.choices import RecordType
from vault.filtersets import PamConfigurationFilterSet, RecordFilterSet, SharedFolderFilterSet
from vault.models import FolderMembership, PamConfiguration, Record, RecordShare, SharedFolder

from .serializers import (
    AuthTokenCredentialsSerializer,
    AuthTokenSerializer,
    EffectiveRecordingSerializer,
    FolderMemberSetSerializer,
    FolderMembershipSerializer,
    MeSerializer,
    PamConfigurationSerializer,
    RecordRights,
    RecordSerializer,
    RecordShareGrantSerializer,
    RecordShareSerializer,
    SharedFolderSerializer,
)

# ---------------------------------------------------------------- caller & tokens


class MeView(APIView):
    """Who the caller is."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer, summary="Describe the caller", tags=["auth"])
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class AuthTokenView(ObtainAuthToken):
    """Exchange a username and password for the caller's API token.

    Unauthenticated by design (it is how a client gets credentials), so no
    session is consulted and no CSRF token is needed.
    """

    authentication_classes: list = []

    @extend_schema(
        request=AuthTokenCredentialsSerializer,
        responses={200: AuthTokenSerializer},
        auth=[],
        summary="Obtain an API token",
        tags=["auth"],
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        return Response(AuthTokenSerializer({"token": token.key, "user_id": user.pk}).data)


# ----------------------------------------------------------------------- helpers


def _type_label(record_type: str) -> str:
    return RecordType(record_type).label if record_type in RecordType.values else record_type


class VaultViewSet(RestrictedViewSet):
    """Common ground of the vault viewsets: answering from the selector after a write."""

    def visible_object(self, pk: int):
        """Re-read an object just written, through the selector (annotations included)."""
        return self.get_queryset().get(pk=pk)


# ------------------------------------------------------------------------ records


@extend_schema(tags=["records"])
@extend_schema_view(
    list=extend_schema(summary="List the records the caller can see"),
    retrieve=extend_schema(summary="Read a record"),
    create=extend_schema(summary="Create a record (needs the configure policy for its type)"),
    update=extend_schema(summary="Replace a record's settings"),
    partial_update=extend_schema(summary="Change some of a record's settings"),
    destroy=extend_schema(summary="Delete a record"),
)
class RecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, VaultViewSet):
    """Resource records: machines, databases, directories and remote-browsing targets."""

    queryset = Record.objects.all()
    serializer_class = RecordSerializer
    filterset_class = RecordFilterSet
    search_fields = ["name", "host", "url"]
    ordering_fields = ["name", "record_type", "created_at"]
    ordering = ["name", "id"]

    def get_visible_queryset(self, user) -> QuerySet[Record]:
        return rules().records_visible_to(user).select_related("configuration", "folder")

    # Rights are computed for a whole page with one query per right, never per row.
    def _serialize(self, records: list[Record], **kwargs):
        context = {
            **self.get_serializer_context(),
            "record_rights": RecordRights.for_records(
                self.request.user, [r.pk for r in records]
            ),
        }
        many = kwargs.pop("many", False)
        return self.get_serializer(records if many else records[0], many=many,
                                   context=context).data

    def list(self, request: Request, *args, **kwargs) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        records = list(page if page is not None else queryset)
        data = self._serialize(records, many=True)
        if page is not None:
            return self.get_paginated_response(data)
        return Response(data)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return Response(self._serialize([self.get_object()]))

    def _check_configurable(self, record: Record) -> None:
        if not rules().may_configure_record(self.request.user, record):
            raise PermissionDenied(
                f"You can see “{record}” but may not change it: that needs a role allowing "
                f"you to configure {_type_label(record.record_type)} records, and edit "
                "access to the record."
            )

    def _check_folder_change(self, old, new) -> None:
        # Putting a record in a folder shares it with every member, and taking it out
        # withdraws their access: both are folder management.
        for folder in (old, new):
            if folder is not None and not rules().may_manage_folder(self.request.user, folder):
                raise PermissionDenied(
                    f"Moving records in or out of the folder “{folder}” needs share access "
                    "on that folder."
                )

    def create(self, request: Request, *args, **kwargs) -> Response:
        user = request.user
        if not rules().configurable_record_types(user):
            raise PermissionDenied(
                "You may not create records: that needs a role with “Can configure "
                "connection settings” or “Can configure remote browsing”."
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not rules().may_configure_record_type(user, data["record_type"]):
            raise PermissionDenied(
                f"You may not create {_type_label(data['record_type'])} records: your "
                "roles do not allow configuring that record type."
            )
        self._check_folder_change(None, data.get("folder"))
        record = services.record_create(acting_user=user, **data)
        return Response(self._serialize([self.visible_object(record.pk)]),
                        status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        partial = kwargs.pop("partial", False)
        user = request.user
        record = self.get_object()
        self._check_configurable(record)
        serializer = self.get_serializer(record, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        new_type = data.get("record_type", record.record_type)
        if new_type != record.record_type and not rules().may_configure_record_type(
            user, new_type
        ):
            raise PermissionDenied(
                f"You may not turn this record into a {_type_label(new_type)} record: your "
                "roles do not allow configuring that record type."
            )
        if "folder" in data and data["folder"] != record.folder:
            self._check_folder_change(record.folder, data["folder"])
        services.record_update(record=record, acting_user=user, **data)
        return Response(self._serialize([self.visible_object(record.pk)]))

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        record = self.get_object()
        self._check_configurable(record)
        services.record_delete(record=record, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="What the record's sessions will record, and why",
        responses=EffectiveRecordingSerializer,
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="effective-recording",
            pagination_class=None, filter_backends=[])
    def effective_recording(self, request: Request, pk: str | None = None) -> Response:
        """Effective recording = configuration allows ∧ record enables ∧ protocol supports."""
        from vault import protocols

        record = self.get_object()
        effective = record.effective_recording()
        configuration = record.configuration
        payload = {
            "graphical": effective.graphical,
            "text": effective.text,
            "graphical_reason": effective.graphical_reason,
            "text_reason": effective.text_reason,
            "protocol": record.protocol,
            "protocol_supports": {
                "graphical": protocols.supports_graphical_recording(record.protocol),
                "text": protocols.supports_text_recording(record.protocol),
            },
            "configuration": {
                "id": configuration.pk,
                "name": configuration.name,
                "allow_graphical_recording": configuration.allow_graphical_recording,
                "allow_text_recording": configuration.allow_text_recording,
            },
            "record": {
                "graphical_recording": record.graphical_recording,
                "text_recording": record.text_recording,
            },
        }
        return Response(EffectiveRecordingSerializer(payload).data)


RECORD_ID_PARAMETER = OpenApiParameter(
    "record_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The record's id."
)


@extend_schema(parameters=[RECORD_ID_PARAMETER])
@extend_schema(tags=["records"])
@extend_schema_view(
    list=extend_schema(summary="List a record's direct shares"),
    create=extend_schema(
        summary="Share the record with a user, or change their access",
        request=RecordShareGrantSerializer,
        responses={200: RecordShareSerializer, 201: RecordShareSerializer},
    ),
    destroy=extend_schema(
        summary="Revoke a user's direct share",
        parameters=[OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH,
                                     description="The id of the user whose share to revoke.")],
    ),
)
class RecordShareViewSet(mixins.ListModelMixin, VaultViewSet):
    """Direct shares of one record: readable by whoever sees the record, changed by
    those who may share it."""

    queryset = RecordShare.objects.all()
    serializer_class = RecordShareSerializer
    filter_backends: list = []
    lookup_field = "user_id"
    lookup_value_regex = "[0-9]+"

    @cached_property
    def record(self) -> Record:
        return get_object_or_404(
            rules().records_visible_to(self.request.user), pk=self.kwargs["record_id"]
        )

    def get_visible_queryset(self, user) -> QuerySet[RecordShare]:
        return RecordShare.objects.filter(record=self.record).select_related(
            "user", "granted_by"
        ).order_by("user__username", "id")

    def _check_shareable(self) -> None:
        if not rules().may_share_record(self.request.user, self.record):
            raise PermissionDenied(
                f"You can see “{self.record}” but may not share it: that needs share "
                "access to the record."
            )

    def create(self, request: Request, *args, **kwargs) -> Response:
        self._check_shareable()
        serializer = RecordShareGrantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        existed = RecordShare.objects.filter(record=self.record, user=user).exists()
        share = services.record_share_grant(
            record=self.record, user=user, access=serializer.validated_data["access"],
            acting_user=request.user,
        )
        return Response(
            RecordShareSerializer(self.get_queryset().get(pk=share.pk)).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        share = self.get_object()
        self._check_shareable()
        services.record_share_revoke(share=share, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- configurations


@extend_schema(tags=["configurations"])
@extend_schema_view(
    list=extend_schema(summary="List the PAM configurations the caller can see"),
    retrieve=extend_schema(summary="Read a PAM configuration"),
    create=extend_schema(summary="Create a PAM configuration"),
    update=extend_schema(summary="Replace a PAM configuration's settings"),
    partial_update=extend_schema(summary="Change some of a PAM configuration's settings"),
    destroy=extend_schema(summary="Delete a PAM configuration no record uses"),
)
class PamConfigurationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, VaultViewSet):
    """PAM configurations: visible to configurers and to users of their records."""

    queryset = PamConfiguration.objects.all()
    serializer_class = PamConfigurationSerializer
    filterset_class = PamConfigurationFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["name", "environment", "created_at"]
    ordering = ["name"]

    def get_visible_queryset(self, user) -> QuerySet[PamConfiguration]:
        # Count only records the caller can see: the count must not reveal others.
        visible_records = rules().records_visible_to(user).values("pk")
        return rules().configurations_visible_to(user).annotate(
            record_count=Count("records", filter=Q(records__pk__in=visible_records))
        )

    def _check_configurer(self) -> None:
        if not rules().may_configure_configurations(self.request.user):
            raise PermissionDenied(
                "Changing PAM configurations needs a role with “Can configure connection "
                "settings”."
            )

    def create(self, request: Request, *args, **kwargs) -> Response:
        self._check_configurer()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        configuration = services.configuration_create(
            acting_user=request.user, **serializer.validated_data
        )
        return Response(self.get_serializer(self.visible_object(configuration.pk)).data,
                        status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        configuration = self.get_object()
        self._check_configurer()
        serializer = self.get_serializer(
            configuration, data=request.data, partial=kwargs.pop("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        services.configuration_update(
            configuration=configuration, acting_user=request.user, **serializer.validated_data
        )
        return Response(self.get_serializer(self.visible_object(configuration.pk)).data)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        configuration = self.get_object()
        self._check_configurer()
        services.configuration_delete(configuration=configuration, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ------------------------------------------------------------------------ folders


def _count_of(queryset: QuerySet, column: str) -> Coalesce:
    """A correlated ``COUNT(*)`` subquery of ``queryset`` rows whose ``column`` is the outer pk.

    Subqueries rather than ``Count()`` joins: two joined counts multiply each other.
    """
    counted = (
        queryset.filter(**{column: OuterRef("pk")})
        .order_by()
        .values(column)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@extend_schema(tags=["folders"])
@extend_schema_view(
    list=extend_schema(summary="List the shared folders the caller belongs to"),
    retrieve=extend_schema(summary="Read a shared folder"),
    create=extend_schema(summary="Create a shared folder (superusers)"),
    update=extend_schema(summary="Rename or describe a shared folder"),
    partial_update=extend_schema(summary="Change some of a shared folder's details"),
    destroy=extend_schema(summary="Delete a shared folder (its records stay)"),
)
class SharedFolderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, VaultViewSet):
    """Shared folders: visible to members, managed by members with share access."""

    queryset = SharedFolder.objects.all()
    serializer_class = SharedFolderSerializer
    filterset_class = SharedFolderFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def get_visible_queryset(self, user) -> QuerySet[SharedFolder]:
        visible = rules().folders_visible_to(user).values("pk")
        managed = rules().folders_managed_by(user).filter(pk=OuterRef("pk"))
        return SharedFolder.objects.filter(pk__in=visible).annotate(
            record_count=_count_of(Record.objects.all(), "folder"),
            member_count=_count_of(FolderMembership.objects.all(), "folder"),
            can_manage=Exists(managed),
        )

    def _check_manager(self, folder: SharedFolder) -> None:
        if not rules().may_manage_folder(self.request.user, folder):
            raise PermissionDenied(
                f"Changing the folder “{folder}” needs share access on it."
            )

    def create(self, request: Request, *args, **kwargs) -> Response:
        if not request.user.is_superuser:
            raise PermissionDenied(
                "Only superusers create shared folders; ask one to create it and give you "
                "share access on it."
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        folder = services.folder_create(acting_user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(self.visible_object(folder.pk)).data,
                        status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        folder = self.get_object()
        self._check_manager(folder)
        serializer = self.get_serializer(
            folder, data=request.data, partial=kwargs.pop("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        services.folder_update(folder=folder, acting_user=request.user,
                               **serializer.validated_data)
        return Response(self.get_serializer(self.visible_object(folder.pk)).data)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        folder = self.get_object()
        self._check_manager(folder)
        services.folder_delete(folder=folder, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


FOLDER_ID_PARAMETER = OpenApiParameter(
    "folder_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The folder's id."
)


@extend_schema(parameters=[FOLDER_ID_PARAMETER])
@extend_schema(tags=["folders"])
@extend_schema_view(
    list=extend_schema(summary="List a folder's members"),
    retrieve=extend_schema(summary="Read one folder membership"),
    create=extend_schema(
        summary="Add a user or group to the folder, or change their access",
        request=FolderMemberSetSerializer,
        responses={200: FolderMembershipSerializer, 201: FolderMembershipSerializer},
    ),
    destroy=extend_schema(summary="Take a user or group out of the folder"),
)
class FolderMembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, VaultViewSet):
    """Members of one shared folder: readable by its members, changed by its managers."""

    queryset = FolderMembership.objects.all()
    serializer_class = FolderMembershipSerializer
    filter_backends: list = []
    lookup_value_regex = "[0-9]+"

    @cached_property
    def folder(self) -> SharedFolder:
        return get_object_or_404(
            rules().folders_visible_to(self.request.user), pk=self.kwargs["folder_id"]
        )

    def get_visible_queryset(self, user) -> QuerySet[FolderMembership]:
        return FolderMembership.objects.filter(folder=self.folder).select_related(
            "user", "group"
        ).order_by("id")

    def _check_manager(self) -> None:
        if not rules().may_manage_folder(self.request.user, self.folder):
            raise PermissionDenied(
                f"Changing the members of “{self.folder}” needs share access on the folder."
            )

    def create(self, request: Request, *args, **kwargs) -> Response:
        self._check_manager()
        serializer = FolderMemberSetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lookup = {"user": data["user"]} if data.get("user") else {"group": data["group"]}
        with transaction.atomic():
            existed = FolderMembership.objects.filter(folder=self.folder, **lookup).exists()
            membership = services.folder_member_set(
                folder=self.folder, acting_user=request.user, access=data["access"], **lookup
            )
        return Response(
            FolderMembershipSerializer(self.get_queryset().get(pk=membership.pk)).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        membership = self.get_object()
        self._check_manager()
        services.folder_member_remove(membership=membership, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
