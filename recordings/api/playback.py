"""Playback API: clients report plays and downloads so every viewing is in the audit trail.

Decryption happens in the client (zero knowledge), so the server cannot see a
play or a download happen; the client says so here before it starts, and the
part reads it then makes are audited one by one as well.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from policies.selectors import may_view_recordings
from recordings.models import Session
from vault.services import audit_event_write

#: Audit actions written for what a client reports (AuditEvent.action).
PLAYBACK_ACTIONS = {"play": "recording.play", "download": "recording.download"}


class PlaybackAuditSerializer(serializers.Serializer):
    """What the client is about to do with a session's recording."""

    action = serializers.ChoiceField(choices=sorted(PLAYBACK_ACTIONS))


class SessionAuditView(APIView):
    """Record that the caller plays or downloads a session's recording (audited).

    404 unless the caller may view the recordings of the session's record.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=PlaybackAuditSerializer,
        responses={
            201: inline_serializer("PlaybackAuditEvent", {
                "id": serializers.IntegerField(),
                "action": serializers.CharField(),
                "session": serializers.UUIDField(),
                "created_at": serializers.DateTimeField(),
            }),
            404: OpenApiResponse(description="No such session, or the caller may not view "
                                 "its recordings."),
        },
        summary="Audit a play or a download of a session's recording",
        tags=["recordings"],
    )
    def post(self, request: Request, session_id) -> Response:
        data = PlaybackAuditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = Session.objects.select_related("record").filter(pk=session_id).first()
        if session is None or not may_view_recordings(request.user, session.record):
            raise NotFound("No such session.")
        action = data.validated_data["action"]
        event = audit_event_write(
            actor=request.user, action=PLAYBACK_ACTIONS[action], instance=session,
            object_repr=f"{session.record.name} · session {session.pk}"[:300],
            after={"session": str(session.pk), "record": session.record_id,
                   "record_name": session.record.name, "action": action,
                   "user_agent": request.headers.get("User-Agent", "")[:300]},
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
        return Response({"id": event.pk, "action": event.action, "session": str(session.pk),
                         "created_at": event.created_at}, status=status.HTTP_201_CREATED)
