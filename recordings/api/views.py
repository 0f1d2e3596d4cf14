"""Views of the recordings API."""

import json
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.storage import default_storage
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from keeperpam.api import StandardPagination
from policies.selectors import records_with_viewable_recordings
from recordings import selectors, services
from recordings.authentication import GatewayAuthentication, IsGateway
from recordings.models import Part, Session, SignerKey
from vault.models import Record
from vault.services import audit_event_write

from .serializers import (
    PartSerializer,
    SessionCloseSerializer,
    SessionOpenedSerializer,
    SessionOpenSerializer,
    SessionSerializer,
    SignerKeySerializer,
)


class SignerKeyListView(generics.ListAPIView):
    """Trusted signer keys, retired ones included, for verifying sealed parts."""

    permission_classes = [IsAuthenticated]
    serializer_class = SignerKeySerializer
    filter_backends: list = []
    queryset = SignerKey.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.trusted_signer_keys(self.request.user)


# ------------------------------------------------------------------ gateway: sessions


def _session_answer(session: Session, request) -> dict:
    effective = session.record.effective_recording()
    recording = getattr(session, "recording", None)
    return {
        "id": session.pk,
        "recording": recording.pk if recording is not None else None,
        "status": session.status,
        "recorded": recording is not None,
        "streams": services.session_streams(session),
        "upload_url": request.build_absolute_uri(reverse("gateway-uploads")),
        "graphical_reason": effective.graphical_reason,
        "text_reason": effective.text_reason,
        "error": session.error,
    }


class GatewaySessionOpenView(APIView):
    """A gateway opens a session: the answer says what to record and where to upload it."""

    authentication_classes = [GatewayAuthentication]
    permission_classes = [IsGateway]

    @extend_schema(request=SessionOpenSerializer, responses={201: SessionOpenedSerializer},
                   summary="Open a session (gateway)")
    def post(self, request):
        data = SessionOpenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        record = Record.objects.select_related("configuration").filter(
            pk=values["record"]).first()
        if record is None:
            raise NotFound("No such record.")
        try:
            session = services.session_open(
                gateway=request.user.gateway, record=record, protocol=values["protocol"],
                launched_by=values["launched_by"], started_at=values.get("started_at"),
                client_address=values.get("client_address"),
            )
        except services.IngestError as exc:
            if exc.status == 404:
                raise NotFound(str(exc)) from exc
            raise ValidationError({"protocol": [str(exc)]}) from exc
        return Response(SessionOpenedSerializer(_session_answer(session, request)).data,
                        status=201)


class GatewaySessionCloseView(APIView):
    """A gateway closes a session; the pipeline then finishes its recording."""

    authentication_classes = [GatewayAuthentication]
    permission_classes = [IsGateway]

    @extend_schema(request=SessionCloseSerializer, responses={200: SessionOpenedSerializer},
                   summary="Close a session (gateway)")
    def post(self, request, session_id):
        data = SessionCloseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            session = Session.objects.select_related("record__configuration").get(
                pk=session_id, gateway=request.user.gateway)
        except (Session.DoesNotExist, DjangoValidationError) as exc:
            raise NotFound("No such session.") from exc
        session = services.session_close(session=session,
                                         ended_at=data.validated_data.get("ended_at"),
                                         exit_status=data.validated_data.get("exit_status"))
        session = Session.objects.select_related("record__configuration").get(pk=session.pk)
        return Response(SessionOpenedSerializer(_session_answer(session, request)).data)


# ------------------------------------------------------------------ users: sessions and parts


class RecordSessionListView(generics.ListAPIView):
    """A record's Session Activity: every session, recorded or not (recording viewers only)."""

    serializer_class = SessionSerializer
    filter_backends: list = []
    pagination_class = StandardPagination
    queryset = Session.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        if not records_with_viewable_recordings(self.request.user).filter(
            pk=self.kwargs["record_id"]
        ).exists():
            # No policy, no access or no such record: the same answer for all three.
            raise NotFound()
        return selectors.record_sessions(self.request.user, self.kwargs["record_id"])


class SessionDetailView(generics.RetrieveAPIView):
    """One session (its record, recording and streams), for clients given a session id."""

    serializer_class = SessionSerializer
    lookup_url_kwarg = "session_id"
    queryset = Session.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.sessions_visible_to(self.request.user)


class StreamPartListView(generics.ListAPIView):
    """The sealed parts of one stream of a session, in order, with where to fetch each."""

    serializer_class = PartSerializer
    filter_backends: list = []
    pagination_class = StandardPagination
    queryset = Part.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        stream = selectors.stream_for_reading(self.request.user, self.kwargs["session_id"],
                                              self.kwargs["stream"])
        if stream is None:
            raise NotFound()
        return stream.parts.order_by("seq")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["url_kwargs"] = {"session_id": self.kwargs.get("session_id"),
                                 "stream": self.kwargs.get("stream")}
        return context


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class OctetStreamRenderer(BaseRenderer):
    """Lets clients ask for ``application/octet-stream``; errors still go out as JSON."""

    media_type = "application/octet-stream"
    format = "bin"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, bytes):
            return data
        return json.dumps(data).encode()


class PartBytesView(APIView):
    """The bytes of one sealed part (HTTP Range supported); every read is audited."""

    renderer_classes = [JSONRenderer, OctetStreamRenderer]

    @extend_schema(responses={(200, "application/octet-stream"): bytes,
                              (206, "application/octet-stream"): bytes},
                   summary="Sealed part bytes")
    def get(self, request, session_id, stream, seq):
        found = selectors.stream_for_reading(request.user, session_id, stream)
        part = found.parts.filter(seq=seq).first() if found is not None else None
        if part is None:
            raise NotFound()
        status, start, end = 200, 0, part.size - 1
        header = request.headers.get("Range")
        if header:
            match = _RANGE.match(header.strip())
            if match is None or match.groups() == ("", ""):
                return _unsatisfiable(part.size)
            first, last = match.groups()
            if first == "":
                start, end = max(0, part.size - int(last)), part.size - 1
            else:
                start = int(first)
                end = min(int(last), part.size - 1) if last else part.size - 1
            if start > end or start >= part.size:
                return _unsatisfiable(part.size)
            status = 206
        with default_storage.open(part.storage_name, "rb") as handle:
            handle.seek(start)
            body = handle.read(end - start + 1)
        audit_event_write(actor=request.user, action="recording.part_read", instance=part,
                          object_repr=f"{session_id}/{stream}/{seq}",
                          after={"session": str(session_id), "stream": stream, "seq": seq,
                                 "range": [start, end]},
                          remote_addr=request.META.get("REMOTE_ADDR"))
        response = HttpResponse(body, status=status, content_type="application/octet-stream")
        response["Accept-Ranges"] = "bytes"
        response["Cache-Control"] = "private, no-store"
        if status == 206:
            response["Content-Range"] = f"bytes {start}-{end}/{part.size}"
        return response


def _unsatisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response
