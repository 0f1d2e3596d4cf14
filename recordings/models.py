"""Gateways, sessions, streams and sealed parts (built by the ingest issue)."""

import uuid

from django.conf import settings
from django.db import models

from .choices import SessionStatus, StreamKind, StreamState, UploadFormat


class SignerKey(models.Model):
    """The public half of a sealer's Ed25519 signing key, trusted by readers (FORMAT.md §2).

    The private half stays in the worker's key file (gateway zone). Retired
    keys sign nothing new but are kept so older parts still verify.
    """

    key_id = models.CharField(
        max_length=64, unique=True, help_text="Hex SHA-256 of the 32-byte raw public key."
    )
    public_key = models.CharField(max_length=43, help_text="b64u of the 32-byte raw public key.")
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "signer key"

    def __str__(self) -> str:
        return f"signer {self.key_id[:12]}" + (" (retired)" if self.retired_at else "")


# ------------------------------------------------------------------ gateways


class Gateway(models.Model):
    """A recorder in the customer network (e.g. guacd plus an agent) that uploads sessions.

    It may open sessions only for records of the PAM configurations it is bound to.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    configurations = models.ManyToManyField(
        "vault.PamConfiguration", related_name="gateways", blank=True,
        help_text="The gateway may open sessions only for records of these configurations.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GatewayCredential(models.Model):
    """An API credential of a gateway: only a SHA-256 of the token is kept (shown once).

    Tokens are ``kpg_<prefix>_<secret>`` with 256 random bits, so a fast hash is
    enough; ``prefix`` finds the row without scanning.
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="credentials")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.gateway} credential kpg_{self.prefix}…" + (
            " (revoked)" if self.revoked_at else ""
        )


# ------------------------------------------------------------------ sessions


class Session(models.Model):
    """One connection a gateway made for a record; listed whether recorded or not."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="sessions")
    record = models.ForeignKey("vault.Record", on_delete=models.CASCADE,
                               related_name="sessions")
    protocol = models.CharField(max_length=20)
    launched_by = models.CharField(max_length=200, help_text="Who launched the session.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="+")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_status = models.IntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=SessionStatus.choices,
                              default=SessionStatus.OPEN, db_index=True)
    error = models.TextField(blank=True)
    graphical = models.BooleanField(default=False)
    text = models.BooleanField(default=False)
    last_activity_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"session {self.id} of {self.record_id}"

    @property
    def duration_ms(self) -> int | None:
        if self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.started_at).total_seconds() * 1000))


class Recording(models.Model):
    """The sealed recording of a session: which record key it is sealed to and who signs it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="recording")
    record_key = models.ForeignKey("vault.RecordKey", on_delete=models.PROTECT, null=True,
                                   blank=True, related_name="recordings")
    signer = models.ForeignKey(SignerKey, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="recordings")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"recording {self.id}"


class Stream(models.Model):
    """One stream of a recording and the sealer's resume state (no plaintext in here).

    ``sealer_state`` holds positions in the staged input, the guac time origin
    and the terminal size: enough for any worker to carry on after the last
    sealed part. Terminal screens (plaintext) are kept in staging, never here.
    """

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="streams")
    kind = models.CharField(max_length=20, choices=StreamKind.choices)
    state = models.CharField(max_length=20, choices=StreamState.choices,
                             default=StreamState.OPEN)
    next_seq = models.PositiveIntegerField(default=0)
    prev = models.CharField(max_length=64, blank=True)
    last_t = models.BigIntegerField(default=0)
    sealer_state = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["recording", "kind"],
                                               name="stream_unique_kind")]

    def __str__(self) -> str:
        return f"{self.recording_id}/{self.kind}"


class Upload(models.Model):
    """A tus upload: input bytes of one format for one stream, staged in chunk files.

    ``offset`` only advances after the bytes are fsynced in staging, so an
    accepted byte is never lost; ``consumed`` is how far the sealer has sealed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="uploads")
    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="uploads")
    format = models.CharField(max_length=20, choices=UploadFormat.choices)
    length = models.BigIntegerField(null=True, blank=True, help_text="Null: deferred.")
    offset = models.BigIntegerField(default=0)
    consumed = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "format"],
                                               name="upload_unique_format")]

    def __str__(self) -> str:
        return f"upload {self.id} ({self.format})"

    @property
    def complete(self) -> bool:
        return self.length is not None and self.offset >= self.length


class Part(models.Model):
    """One sealed part (FORMAT.md), stored as one object in Django's default storage."""

    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="parts")
    seq = models.PositiveIntegerField()
    t0 = models.BigIntegerField()
    t1 = models.BigIntegerField()
    final = models.BooleanField(default=False)
    kf = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["stream", "seq"]
        constraints = [models.UniqueConstraint(fields=["stream", "seq"],
                                               name="part_unique_seq")]

    def __str__(self) -> str:
        return f"{self.stream} #{self.seq}"
