"""Project middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from .api import DATABASE_RETRY_AFTER


class DatabaseUnavailableMiddleware:
    """Answer 503 with ``Retry-After``, not 500, when the database is briefly unreachable.

    The API views already do (``keeperpam.api.exception_handler``); this covers
    every other view (admin, pages). Django closes the broken connection when
    the request ends, so the next request reconnects.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        message = "The vault's database is briefly unavailable; retry shortly."
        if request.accepts("text/html") and not request.path.startswith("/api/"):
            response: HttpResponse = HttpResponse(message, status=503,
                                                  content_type="text/plain; charset=utf-8")
        else:
            response = JsonResponse({"detail": message}, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
