"""Views of the roles and policies API.

Roles are read by their holders and by superusers; only superusers change
them, through :mod:`policies.services`.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from keeperpam.api import RestrictedViewSet, StandardPagination
from policies import selectors, services
from policies.choices import Policy, configure_policy_for, view_policy_for
from policies.filtersets import RoleFilterSet
from policies.models import Role
from vault.choices import RecordType

from .serializers import PolicySerializer, RoleSerializer


@extend_schema(tags=["roles"])
@extend_schema_view(
    list=extend_schema(summary="List roles (all for superusers, else those the caller holds)"),
    retrieve=extend_schema(summary="Read a role"),
    create=extend_schema(summary="Create a role (superusers)"),
    update=extend_schema(summary="Replace a role (superusers)"),
    partial_update=extend_schema(summary="Change a role's policies or members (superusers)"),
    destroy=extend_schema(summary="Delete a role (superusers)"),
)
class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, RestrictedViewSet):
    """Roles and the enforcement policies they give their members."""

    queryset = Role.objects.all()
    serializer_class = RoleSerializer
    filterset_class = RoleFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def get_visible_queryset(self, user) -> QuerySet[Role]:
        roles = Role.objects.all() if user.is_superuser else selectors.roles_of(user)
        # Only member ids are shown: fetch nothing else (no password hashes).
        return roles.prefetch_related(
            Prefetch("users", queryset=get_user_model().objects.only("pk")),
            Prefetch("groups", queryset=Group.objects.only("pk")),
        )

    def _check_superuser(self) -> None:
        if not self.request.user.is_superuser:
            raise PermissionDenied("Only superusers create, change or delete roles.")

    def create(self, request: Request, *args, **kwargs) -> Response:
        self._check_superuser()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        role = services.role_create(acting_user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=role.pk)).data,
                        status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        role = self.get_object()
        self._check_superuser()
        serializer = self.get_serializer(role, data=request.data,
                                         partial=kwargs.pop("partial", False))
        serializer.is_valid(raise_exception=True)
        services.role_update(role=role, acting_user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=role.pk)).data)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        role = self.get_object()
        self._check_superuser()
        services.role_delete(role=role, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _policy_catalogue() -> list[dict]:
    help_texts = {f.name: str(f.help_text) for f in Role._meta.fields}
    catalogue = []
    for policy in Policy:
        configure = policy in (Policy.CONFIGURE_CONNECTIONS, Policy.CONFIGURE_REMOTE_BROWSING)
        governs = configure_policy_for if configure else view_policy_for
        catalogue.append({
            "value": policy.value,
            "label": policy.label,
            "description": help_texts[policy.value],
            "kind": "configure" if configure else "view_recordings",
            "record_types": [t for t in RecordType.values if governs(t) == policy],
        })
    return catalogue


@extend_schema(tags=["roles"])
@extend_schema_view(list=extend_schema(summary="List the enforcement policies a role can carry"))
class PolicyViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The four enforcement policies: a fixed catalogue, the same for every caller."""

    serializer_class = PolicySerializer
    pagination_class = StandardPagination
    filter_backends: list = []

    def get_queryset(self) -> list[dict]:
        return _policy_catalogue()
