"""Celery tasks of the recordings app: thin, ids only, idempotent, ``acks_late``.

A task killed mid-way is redelivered (``acks_late`` + reject on worker lost)
and finds the stream state of the last committed batch (see
:mod:`recordings.sealing`).
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

#: A database restart or failover surfaces as OperationalError (cannot connect,
#: connection lost mid-query) or InterfaceError (the connection is already closed);
#: the task is sent again with backoff and finds the state of the last commit.
RETRY = {"autoretry_for": (OperationalError, InterfaceError, OSError), "retry_backoff": True,
         "retry_backoff_max": 60, "max_retries": 12}


@shared_task(bind=True, acks_late=True, **RETRY)
def stream_seal_pending(self, upload_id: str) -> None:
    """Seal what has been staged for the stream of ``upload_id`` (not the end of it)."""
    from .models import Upload
    from .sealing import stream_advance

    stream_id = Upload.objects.filter(pk=upload_id).values_list("stream_id", flat=True).first()
    if stream_id is not None:
        stream_advance(stream_id=stream_id)


@shared_task(bind=True, acks_late=True, **RETRY)
def stream_flush(self, stream_id: int, now_ms: int) -> None:
    """Seal a quiet terminal stream's pending part if it started 10 s before ``now_ms``."""
    from .sealing import stream_advance

    stream_advance(stream_id=stream_id, flush_now_ms=now_ms)


@shared_task(bind=True, acks_late=True)
def streams_flush_quiet(self) -> int:
    """Send :func:`stream_flush` for every open terminal stream with unsealed input (beat).

    Without it a terminal that goes quiet keeps its last part unsealed until
    more output arrives or the session closes.
    """
    from .sealing import quiet_streams

    found = quiet_streams()
    for stream_id, now_ms in found:
        stream_flush.delay(stream_id, now_ms)
    return len(found)


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
