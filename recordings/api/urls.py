"""Recording API routes (gateway ingest and playback arrive with the ingest issue)."""

urlpatterns: list = []
