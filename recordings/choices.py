"""Enumerations of the recordings app."""

from django.db import models


class SessionStatus(models.TextChoices):
    """Where a session is in its life: recording, being finished, done."""

    OPEN = "open", "Recording"
    CLOSING = "closing", "Sealing"
    SEALED = "sealed", "Sealed"
    #: The gateway vanished (or closed with uploads short of their length):
    #: everything staged was sealed, but the streams have no ``final`` part.
    INCOMPLETE = "incomplete", "Incomplete"
    NOT_RECORDED = "not_recorded", "Not recorded"
    FAILED = "failed", "Failed"


class StreamKind(models.TextChoices):
    GUAC = "guac", "Graphical (Guacamole)"
    TERMINAL = "terminal", "Terminal"
    TYPESCRIPT_ZIP = "typescript-zip", "Typescript download (zip)"
    ACTIVITY = "activity", "Activity"


class StreamState(models.TextChoices):
    OPEN = "open", "Open"
    SEALED = "sealed", "Sealed (final part written)"
    INCOMPLETE = "incomplete", "Incomplete (no final part)"
    FAILED = "failed", "Failed"


class UploadFormat(models.TextChoices):
    """Input formats a gateway may upload (``Upload-Metadata: format``)."""

    GUAC = "guac", "Guacamole protocol dump"
    TYPESCRIPT = "typescript", "Typescript (guacd or util-linux script)"
    TIMING = "timing", "Timing file of a typescript"
    ASCIICAST = "asciicast", "asciicast v2"


#: Which stream an input format feeds.
STREAM_OF_FORMAT = {
    UploadFormat.GUAC: StreamKind.GUAC,
    UploadFormat.TYPESCRIPT: StreamKind.TERMINAL,
    UploadFormat.TIMING: StreamKind.TERMINAL,
    UploadFormat.ASCIICAST: StreamKind.TERMINAL,
}
