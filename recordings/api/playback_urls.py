"""Routes of the playback API used by the vault UI and clients (audit of plays and downloads)."""

urlpatterns: list = []
