"""Celery tasks of the vault: thin, idempotent, ``acks_late``."""

from celery import shared_task


@shared_task(bind=True, acks_late=True)
def key_shares_reconcile_all(self) -> int:
    """Delete record key shares their holders may no longer hold (periodic safety net)."""
    from .key_services import key_shares_reconcile_all as reconcile

    return reconcile()
