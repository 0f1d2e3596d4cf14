"""tus 1.0.0 server for gateway uploads (core + creation + creation-defer-length + termination).

Why our own server and not ``drf-tus``: what we need is tied to our models —
gateway credentials, uploads bound to a session and stream, chunk files in
the staging area, a byte acknowledged only after it is fsynced *and* the
offset committed, a retried PATCH at an old offset changing nothing, and the
sealer enqueued on commit. drf-tus brings its own upload model and storage
handling; adapting and re-verifying it against these guarantees looked
costlier than these ~200 lines (it was not evaluated in depth).

Routes (under ``/api/v1/gateway/uploads/``): ``OPTIONS``/``POST`` on the
collection, ``HEAD``/``PATCH``/``DELETE`` on ``{id}/``. Gateways authenticate
with their credential (``Authorization: Gateway kpg_…``).
"""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from . import services
from .authentication import GatewayAuthentication, IsGateway

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-defer-length,termination"
CONTENT_TYPE = "application/offset+octet-stream"


def _tus(response: HttpResponse) -> HttpResponse:
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    return response


def _error(status: int, message: str, **headers: str) -> HttpResponse:
    response = _tus(JsonResponse({"detail": message}, status=status))
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _int_header(request, name: str) -> int | None:
    """A non-negative integer header, None when absent; ValueError when malformed."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise ValueError(f"{name} must be a non-negative integer.")
    return int(value)


def metadata_parse(value: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    result: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        pieces = item.split(" ")
        if len(pieces) > 2 or not pieces[0] or pieces[0] in result:
            raise ValueError(f"Malformed Upload-Metadata item {item[:40]!r}.")
        try:
            decoded = base64.b64decode(pieces[1], validate=True) if len(pieces) == 2 else b""
            result[pieces[0]] = decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"Upload-Metadata value of {pieces[0]!r} is not base64 "
                             "of UTF-8 text.") from exc
    return result


class _TusView(APIView):
    authentication_classes = [GatewayAuthentication]
    permission_classes = [IsGateway]
    parser_classes: list = []
    throttle_classes: list = []

    def _version_error(self, request) -> HttpResponse | None:
        if request.method == "OPTIONS":
            return None
        if request.headers.get("Tus-Resumable") != TUS_VERSION:
            return _error(412, f"This server speaks tus {TUS_VERSION} "
                          "(send Tus-Resumable: 1.0.0).", Tus_Version=TUS_VERSION)
        return None

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        response["Tus-Resumable"] = TUS_VERSION
        return response

    @property
    def gateway(self):
        return self.request.user.gateway


class TusCollectionView(_TusView):
    """Discover the server (OPTIONS) and create uploads (POST)."""

    @extend_schema(exclude=True)
    def options(self, request, *args, **kwargs):
        response = HttpResponse(status=204)
        response["Tus-Version"] = TUS_VERSION
        response["Tus-Extension"] = EXTENSIONS
        # No Tus-Max-Size: the total size of an upload is unlimited.
        return _tus(response)

    @extend_schema(exclude=True)
    def post(self, request, *args, **kwargs):
        if (error := self._version_error(request)) is not None:
            return error
        try:
            length = _int_header(request, "Upload-Length")
            defer = request.headers.get("Upload-Defer-Length")
            metadata = metadata_parse(request.headers.get("Upload-Metadata", ""))
        except ValueError as exc:
            return _error(400, str(exc))
        if defer is not None and defer != "1":
            return _error(400, "Upload-Defer-Length must be 1.")
        if (length is None) == (defer is None):
            return _error(400, "Send either Upload-Length or Upload-Defer-Length: 1.")
        if (_int_header(request, "Content-Length") or 0) > 0:
            return _error(400, "Send the bytes with PATCH (creation-with-upload is not "
                          "supported).")
        missing = [key for key in ("session", "format") if not metadata.get(key)]
        if missing:
            return _error(400, f"Upload-Metadata needs {' and '.join(missing)}.")
        try:
            upload = services.upload_create(gateway=self.gateway, session_id=metadata["session"],
                                            format=metadata["format"], length=length)
        except services.IngestError as exc:
            return _error(exc.status, str(exc))
        response = HttpResponse(status=201)
        response["Location"] = request.build_absolute_uri(
            reverse("gateway-upload", kwargs={"upload_id": upload.pk}))
        response["Upload-Offset"] = "0"
        return _tus(response)


class TusUploadView(_TusView):
    """One upload: its offset (HEAD), appending (PATCH), termination (DELETE)."""

    @extend_schema(exclude=True)
    def options(self, request, *args, **kwargs):
        return TusCollectionView.options(self, request)

    @extend_schema(exclude=True)
    def head(self, request, upload_id, *args, **kwargs):
        if (error := self._version_error(request)) is not None:
            return error
        try:
            upload = services.upload_for_gateway(upload_id=upload_id, gateway=self.gateway)
        except services.IngestError as exc:
            return _tus(HttpResponse(status=exc.status))
        response = HttpResponse(status=200)
        response["Upload-Offset"] = str(upload.offset)
        if upload.length is None:
            response["Upload-Defer-Length"] = "1"
        else:
            response["Upload-Length"] = str(upload.length)
        return _tus(response)

    @extend_schema(exclude=True)
    def get(self, request, upload_id, *args, **kwargs):
        return _error(405, "Use HEAD for the offset (tus).")

    @extend_schema(exclude=True)
    def patch(self, request, upload_id, *args, **kwargs):
        if (error := self._version_error(request)) is not None:
            return error
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != CONTENT_TYPE:
            return _error(415, f"PATCH bodies must be {CONTENT_TYPE}.")
        try:
            offset = _int_header(request, "Upload-Offset")
            length = _int_header(request, "Upload-Length")
        except ValueError as exc:
            return _error(400, str(exc))
        if offset is None:
            return _error(400, "Upload-Offset is required.")
        try:
            upload = services.upload_append(
                upload_id=upload_id, gateway=self.gateway, offset=offset,
                body=request._request, length=length,  # the raw stream, not DRF-parsed
                body_limit=settings.KEEPERPAM_UPLOAD_CHUNK_MAX_BYTES,
            )
        except services.UploadOffsetMismatch as exc:
            return _error(409, str(exc), Upload_Offset=str(exc.current))
        except services.IngestError as exc:
            return _error(exc.status, str(exc))
        except DatabaseError:
            # Busy or briefly unreachable database: the chunk is staged but the offset
            # did not move, so the client retries at the same offset (tus clients do).
            return _error(503, "The vault is busy; retry this PATCH at the same offset.",
                          Retry_After="2")
        except OSError:
            # The client went away mid-body: nothing was acknowledged; it resumes via HEAD.
            return _error(400, "The request body was cut short; HEAD for the offset and resume.")
        response = HttpResponse(status=204)
        response["Upload-Offset"] = str(upload.offset)
        return _tus(response)

    @extend_schema(exclude=True)
    def delete(self, request, upload_id, *args, **kwargs):
        if (error := self._version_error(request)) is not None:
            return error
        try:
            services.upload_terminate(upload_id=upload_id, gateway=self.gateway)
        except services.IngestError as exc:
            return _error(exc.status, str(exc))
        return _tus(HttpResponse(status=204))
