"""Gateways, sessions, streams and sealed parts (built by the ingest issue)."""
