"""keeperpam: a zero-knowledge vault for privileged-session recordings.

The Celery app is loaded by ``recordings.apps`` when Django starts, not here,
so that the offline CLI (``python -m keeperpam.cli``) and the crypto library
import neither Django nor Celery.
"""
