"""Routes of the playback API used by the vault UI and clients (audit of plays and downloads).

| route | who | what |
|---|---|---|
| ``sessions/{id}/audit/`` | recording viewers | POST {"action": "play"|"download"} |
"""

from django.urls import path

from .playback import SessionAuditView

urlpatterns: list = [
    path("sessions/<uuid:session_id>/audit/", SessionAuditView.as_view(),
         name="session-audit"),
]
