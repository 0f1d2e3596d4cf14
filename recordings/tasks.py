"""Celery tasks of the recordings app: thin, ids only, idempotent, ``acks_late``.

A task killed mid-way is redelivered (``acks_late`` + reject on worker lost)
and finds the stream state of the last committed batch (see
:mod:`recordings.sealing`).
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

RETRY = {"autoretry_for": (OperationalError, OSError), "retry_backoff": True,
         "max_retries": 10}


@shared_task(bind=True, acks_late=True, **RETRY)
def stream_seal_pending(self, upload_id: str) -> None:
    """Seal what has been staged for the stream of ``upload_id`` (not the end of it)."""
    from .models import Upload
    from .sealing import stream_advance

    stream_id = Upload.objects.filter(pk=upload_id).values_list("stream_id", flat=True).first()
    if stream_id is not None:
        stream_advance(stream_id=stream_id)


@shared_task(bind=True, acks_late=True, **RETRY)
def session_finish(self, session_id: str, incomplete: bool = False) -> None:
    """Finish a closed session: final parts, the typescript zip, purge staging."""
    from .sealing import session_finish as finish

    finish(session_id=session_id, incomplete=incomplete)


@shared_task(bind=True, acks_late=True)
def sessions_reap_idle(self) -> int:
    """Seal as *incomplete* the open sessions whose gateway went silent (Celery beat)."""
    from .services import sessions_abandon_idle

    return len(sessions_abandon_idle())
