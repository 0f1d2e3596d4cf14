"""The Privileged Access Manager enforcement policies a role can carry."""

from django.db import models

from vault.choices import RecordType


class Policy(models.TextChoices):
    CONFIGURE_CONNECTIONS = "can_configure_connections", "Can configure connection settings"
    VIEW_RECORDINGS = "can_view_recordings", "Can view session recordings"
    CONFIGURE_REMOTE_BROWSING = "can_configure_remote_browsing", "Can configure remote browsing"
    VIEW_RBI_RECORDINGS = "can_view_rbi_recordings", "Can view RBI session recordings"


# Remote browsing is governed by its own pair of policies; every other type by the first pair.
NON_RBI_TYPES: tuple[str, ...] = (
    RecordType.MACHINE,
    RecordType.DATABASE,
    RecordType.DIRECTORY,
)


def configure_policy_for(record_type: str) -> str:
    """The policy needed to configure records of ``record_type``."""
    if record_type == RecordType.REMOTE_BROWSING:
        return Policy.CONFIGURE_REMOTE_BROWSING
    return Policy.CONFIGURE_CONNECTIONS


def view_policy_for(record_type: str) -> str:
    """The policy needed to view recordings of records of ``record_type``."""
    if record_type == RecordType.REMOTE_BROWSING:
        return Policy.VIEW_RBI_RECORDINGS
    return Policy.VIEW_RECORDINGS
