"""Recording API routes.

| route | who | what |
|---|---|---|
| ``signers/`` | users | trusted sealer keys |
| ``gateway/sessions/`` | gateways | open a session |
| ``gateway/sessions/{id}/close/`` | gateways | close it |
| ``gateway/uploads/`` ``gateway/uploads/{id}/`` | gateways | tus 1.0.0 uploads |
| ``records/{id}/sessions/`` | recording viewers | Session Activity |
| ``sessions/{id}/`` | recording viewers | one session |
| ``sessions/{id}/streams/{stream}/parts/`` | recording viewers | sealed parts of a stream |
| ``sessions/{id}/streams/{stream}/parts/{seq}/`` | recording viewers | one part's bytes (Range) |
"""

from django.urls import path

from recordings.tus import TusCollectionView, TusUploadView

from .views import (
    GatewaySessionCloseView,
    GatewaySessionOpenView,
    PartBytesView,
    RecordSessionListView,
    SessionDetailView,
    SignerKeyListView,
    StreamPartListView,
)

urlpatterns: list = [
    path("signers/", SignerKeyListView.as_view(), name="signers"),
    path("gateway/sessions/", GatewaySessionOpenView.as_view(), name="gateway-sessions"),
    path("gateway/sessions/<uuid:session_id>/close/", GatewaySessionCloseView.as_view(),
         name="gateway-session-close"),
    path("gateway/uploads/", TusCollectionView.as_view(), name="gateway-uploads"),
    path("gateway/uploads/<str:upload_id>/", TusUploadView.as_view(), name="gateway-upload"),
    path("records/<int:record_id>/sessions/", RecordSessionListView.as_view(),
         name="record-sessions"),
    path("sessions/<uuid:session_id>/", SessionDetailView.as_view(), name="session-detail"),
    path("sessions/<uuid:session_id>/streams/<str:stream>/parts/",
         StreamPartListView.as_view(), name="session-stream-parts"),
    path("sessions/<uuid:session_id>/streams/<str:stream>/parts/<int:seq>/",
         PartBytesView.as_view(), name="session-stream-part"),
]
