"""The OpenAPI 3 schema: served, browsable, complete and free of warnings."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

EXPECTED_PATHS = {
    "/api/v1/auth/token/": {"post"},
    "/api/v1/me/": {"get"},
    "/api/v1/records/": {"get", "post"},
    "/api/v1/records/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/records/{id}/effective-recording/": {"get"},
    "/api/v1/records/{record_id}/shares/": {"get", "post"},
    "/api/v1/records/{record_id}/shares/{user_id}/": {"delete"},
    "/api/v1/configurations/": {"get", "post"},
    "/api/v1/configurations/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/folders/": {"get", "post"},
    "/api/v1/folders/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/folders/{folder_id}/members/": {"get", "post"},
    "/api/v1/folders/{folder_id}/members/{id}/": {"get", "delete"},
    "/api/v1/roles/": {"get", "post"},
    "/api/v1/roles/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/policies/": {"get"},
}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "keeperpam API"


def test_schema_documents_the_vault_and_roles_api(schema):
    paths = schema["paths"]
    for path, methods in EXPECTED_PATHS.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path


def test_schema_documents_token_and_session_auth(schema):
    schemes = schema["components"]["securitySchemes"]
    assert {"tokenAuth", "cookieAuth"} <= set(schemes)
    token = schema["paths"]["/api/v1/auth/token/"]["post"]
    credentials = token["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert credentials.rsplit("/", 1)[-1] in schema["components"]["schemas"]
    assert "token" in _component(schema, token["responses"]["200"])["properties"]


def test_lists_are_paginated_in_the_schema(schema):
    for path in ("/api/v1/records/", "/api/v1/configurations/", "/api/v1/folders/",
                 "/api/v1/roles/", "/api/v1/policies/", "/api/v1/records/{record_id}/shares/",
                 "/api/v1/folders/{folder_id}/members/"):
        operation = schema["paths"][path]["get"]
        names = {p["name"] for p in operation.get("parameters", [])}
        assert {"page", "page_size"} <= names, path
        assert "count" in _component(schema, operation["responses"]["200"])["properties"]


def test_record_schema_carries_the_permissions_object(schema):
    record = schema["components"]["schemas"]["Record"]
    assert "permissions" in record["properties"]
    assert "permissions" not in schema["components"]["schemas"]["RecordRequest"]["properties"]


def test_swagger_ui_is_served(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


def test_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    # --fail-on-warn makes any warning or error raise instead of passing silently.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert target.read_text().startswith("openapi: 3")


def _component(schema: dict, response: dict) -> dict:
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
