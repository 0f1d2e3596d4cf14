"""keeperpam.middleware: a database that is briefly unreachable answers 503, never 500."""

from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.test import RequestFactory

from keeperpam.middleware import DatabaseUnavailableMiddleware


def _middleware() -> DatabaseUnavailableMiddleware:
    return DatabaseUnavailableMiddleware(lambda request: HttpResponse())


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_pages_answer_503_with_retry_after(error):
    request = RequestFactory().get("/admin/", HTTP_ACCEPT="text/html")
    response = _middleware().process_exception(request, error("connection refused"))
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert b"briefly unavailable" in response.content


def test_api_clients_get_json():
    request = RequestFactory().get("/api/v1/me/", HTTP_ACCEPT="application/json")
    response = _middleware().process_exception(request, OperationalError("gone"))
    assert response.status_code == 503
    assert "briefly unavailable" in json.loads(response.content)["detail"]


def test_other_errors_are_left_alone():
    request = RequestFactory().get("/admin/")
    assert _middleware().process_exception(request, RuntimeError("a bug")) is None
