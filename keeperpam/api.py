"""API plumbing shared by every app: error format and the restricted base viewset."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

#: Seconds a client is asked to wait when the database is unreachable (503).
DATABASE_RETRY_AFTER = 2


def _validation_detail(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in
                error.message_dict.items()}
    return {"non_field_errors": [str(m) for m in error.messages]}


def exception_handler(exc, context) -> Response | None:
    """DRF's handler, plus model ``ValidationError`` as 400 and a uniform ``detail`` key.

    Every error body is JSON: ``{"detail": "...", "errors": {field: [..]}}`` for
    validation errors, ``{"detail": "..."}`` otherwise. A database that is briefly
    unreachable (restarting, failing over, a dropped connection) answers 503 with
    ``Retry-After`` rather than 500, so clients retry (tus clients HEAD for the offset).
    """
    if isinstance(exc, OperationalError | InterfaceError):
        # Django drops the broken connection when the request ends
        # (close_old_connections), so the next request reconnects.
        return Response({"detail": "The vault's database is briefly unavailable; retry shortly."},
                        status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_validation_detail(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = response.data
        if isinstance(errors, list):
            errors = {"non_field_errors": errors}
        first = (
            next(iter(errors.values()), ["Invalid input."]) if isinstance(errors, dict)
            else errors
        )
        message = first[0] if isinstance(first, list) and first else str(first)
        response.data = {"detail": f"Invalid input: {message}", "errors": errors}
    return response


class StandardPagination(PageNumberPagination):
    """Page-number pagination whose size the client may choose, up to a ceiling.

    The ceiling keeps one request's cost bounded: a list costs a constant number of
    queries, but its rows still have to be serialised.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class RestrictedViewSet(viewsets.GenericViewSet):
    """Base viewset: the queryset is always the caller's permission-filtered selector.

    Subclasses implement ``get_visible_queryset(user)``; objects outside it
    answer 404 for every action, so nobody learns what they may not see.
    """

    pagination_class = StandardPagination
    lookup_value_regex = "[0-9]+"

    def get_visible_queryset(self, user):
        raise ImproperlyConfigured(f"{type(self).__name__} must define get_visible_queryset().")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return self.get_visible_queryset(self.request.user)
