"""Recording API routes (gateway ingest and playback arrive with the ingest issue)."""

from django.urls import path

from .views import SignerKeyListView

urlpatterns: list = [
    path("signers/", SignerKeyListView.as_view(), name="signers"),
]
