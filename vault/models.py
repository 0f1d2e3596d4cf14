"""Data of the vault: PAM configurations, resource records, sharing and the audit trail.

Invariants live in ``clean()`` so that every writer (admin, API, services)
refuses the same things; object-level rights on records are kept in
django-guardian's tables by :mod:`vault.services`, derived from the shares
and folder memberships stored here.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from . import protocols
from .choices import AccessLevel, AuditAction, Protocol, RecordType
from .querysets import RecordQuerySet


class PamConfiguration(models.Model):
    """How a gateway reaches a group of resources, and what it may record there."""

    class Environment(models.TextChoices):
        LOCAL = "local", "Local network"
        AWS = "aws", "AWS"
        AZURE = "azure", "Azure"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    environment = models.CharField(
        max_length=20, choices=Environment.choices, default=Environment.LOCAL
    )
    network_cidr = models.CharField(
        "network CIDR",
        max_length=100,
        blank=True,
        help_text="Address range the gateway may connect to, e.g. 10.0.0.0/16.",
    )
    connections_enabled = models.BooleanField(
        default=True, help_text="Let users launch connections through the gateway."
    )
    tunneling_enabled = models.BooleanField(
        default=False, help_text="Let users open port-forwarding tunnels through the gateway."
    )
    allow_graphical_recording = models.BooleanField(
        "allow graphical session recording",
        default=True,
        help_text="Records using this configuration may record sessions graphically.",
    )
    allow_text_recording = models.BooleanField(
        "allow text session recording (typescript)",
        default=True,
        help_text="Records using this configuration may record terminal sessions as text.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "PAM configuration"

    def __str__(self) -> str:
        return self.name


class SharedFolder(models.Model):
    """A folder of records shared with users and groups at a chosen access level."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Record(models.Model):
    """A resource record: a machine, database, directory or remote-browsing target."""

    name = models.CharField(max_length=200)
    record_type = models.CharField("type", max_length=32, choices=RecordType.choices)
    protocol = models.CharField(max_length=20, choices=Protocol.choices)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    url = models.URLField("URL", max_length=500, blank=True)
    configuration = models.ForeignKey(
        PamConfiguration,
        on_delete=models.PROTECT,
        related_name="records",
        verbose_name="PAM configuration",
    )
    folder = models.ForeignKey(
        SharedFolder,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="records",
        verbose_name="shared folder",
    )
    graphical_recording = models.BooleanField(
        "graphical session recording",
        default=False,
        help_text="Record sessions graphically (screen, as the Guacamole protocol).",
    )
    text_recording = models.BooleanField(
        "text session recording (typescript)",
        default=False,
        help_text="Record terminal sessions as text (typescript with timing).",
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RecordQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        permissions = [("share_record", "Can share record")]
        indexes = [models.Index(fields=["record_type", "protocol"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_remote_browsing(self) -> bool:
        return self.record_type == RecordType.REMOTE_BROWSING

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.record_type and self.protocol and not protocols.protocol_allowed(
            self.record_type, self.protocol
        ):
            allowed = ", ".join(
                Protocol(p).label for p in protocols.PROTOCOLS_BY_RECORD_TYPE[self.record_type]
            )
            errors["protocol"] = (
                f"{RecordType(self.record_type).label} records take {allowed}, "
                f"not {Protocol(self.protocol).label}."
            )
        if self.text_recording and self.protocol and not protocols.supports_text_recording(
            self.protocol
        ):
            errors["text_recording"] = protocols.text_recording_unavailable_reason(self.protocol)
        if self.record_type == RecordType.REMOTE_BROWSING:
            if not self.url:
                errors["url"] = "Remote browsing records need the URL to open."
        elif self.record_type:
            if not self.host:
                errors["host"] = "This record needs the host to connect to."
            if self.port is not None and not 1 <= self.port <= 65535:
                errors["port"] = "Ports run from 1 to 65535."
        if errors:
            raise ValidationError(errors)

    def effective_recording(self) -> protocols.EffectiveRecording:
        """What this record's sessions will record (see :func:`protocols.effective_recording`)."""
        return protocols.effective_recording(
            protocol=self.protocol,
            configuration_allows_graphical=self.configuration.allow_graphical_recording,
            configuration_allows_text=self.configuration.allow_text_recording,
            record_enables_graphical=self.graphical_recording,
            record_enables_text=self.text_recording,
        )


class FolderMembership(models.Model):
    """A user or a group given access to every record of a shared folder."""

    folder = models.ForeignKey(SharedFolder, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="folder_memberships",
    )
    group = models.ForeignKey(
        "auth.Group",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="folder_memberships",
    )
    access = models.CharField(max_length=10, choices=AccessLevel.choices, default=AccessLevel.VIEW)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["folder", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="folder_membership_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["folder", "user"], name="folder_membership_unique_user"
            ),
            models.UniqueConstraint(
                fields=["folder", "group"], name="folder_membership_unique_group"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} in {self.folder} ({self.get_access_display()})"

    @property
    def member(self):
        return self.user or self.group

    def clean(self) -> None:
        if bool(self.user_id) == bool(self.group_id):
            raise ValidationError("A folder member is either a user or a group, not both.")


class RecordShare(models.Model):
    """A record shared directly with one user."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="record_shares"
    )
    access = models.CharField(max_length=10, choices=AccessLevel.choices, default=AccessLevel.VIEW)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["record", "id"]
        constraints = [
            models.UniqueConstraint(fields=["record", "user"], name="record_share_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.record} → {self.user} ({self.get_access_display()})"


class AuditEvent(models.Model):
    """One change or access: who did what to which object, with before/after, and when."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_repr = models.CharField("actor", max_length=200, blank=True)
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=100, db_index=True)
    object_id = models.CharField(max_length=64, blank=True, db_index=True)
    object_repr = models.CharField("object", max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_repr} {self.action} {self.object_type} {self.object_repr}"


__all__ = [
    "AccessLevel",
    "AuditAction",
    "AuditEvent",
    "FolderMembership",
    "PamConfiguration",
    "Record",
    "RecordShare",
    "SharedFolder",
]


# ------------------------------------------------------------------------- keys
# Zero-knowledge key material (FORMAT.md §6, DESIGN.md "Keys"): only public keys
# and wrapped private keys are ever stored here.


class UserKey(models.Model):
    """A user's P-256 key pair: the public key, and the private key under their passphrase.

    The pair is made on the user's device; the server stores the public key
    (b64u DER SubjectPublicKeyInfo) and the protected private key JSON of
    FORMAT.md §6, and can open neither.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vault_key"
    )
    public_key = models.TextField(help_text="b64u DER SubjectPublicKeyInfo (P-256).")
    key_id = models.CharField(
        max_length=64, db_index=True, help_text="Hex SHA-256 of the public key's DER."
    )
    protected_private_key = models.JSONField(
        help_text="Private key encrypted under the user's passphrase (FORMAT.md §6)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]
        verbose_name = "user key"

    def __str__(self) -> str:
        return f"{self.user} key {self.key_id[:12]}"


class RecoveryKey(models.Model):
    """The organisation's recovery public key: every new record key is also wrapped to it.

    Its private half lives offline with the organisation (never on the vault).
    At most one is active; enrolling another retires the previous one, whose
    shares stay so the recordings sealed meanwhile remain recoverable.
    """

    label = models.CharField(max_length=200)
    public_key = models.TextField(help_text="b64u DER SubjectPublicKeyInfo (P-256).")
    key_id = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "recovery key"

    def __str__(self) -> str:
        return f"{self.label} ({self.key_id[:12]})"


class RecordKey(models.Model):
    """One version of a record's P-256 key pair; sealed parts wrap their data keys to it.

    Only the public key is stored; the private key exists on the server only
    as :class:`RecordKeyShare` rows. A retired version seals nothing new but
    still opens the recordings sealed under it.
    """

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="keys")
    version = models.PositiveIntegerField()
    public_key = models.TextField(help_text="b64u DER SubjectPublicKeyInfo (P-256).")
    key_id = models.CharField(
        max_length=64, unique=True, help_text="Hex SHA-256 of the public key's DER."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["record", "-version"]
        verbose_name = "record key"
        constraints = [
            models.UniqueConstraint(fields=["record", "version"], name="record_key_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.record} key v{self.version}"


class RecordKeyShare(models.Model):
    """A record private key wrapped (HPKE, FORMAT.md §6) to one user or to the recovery key."""

    record_key = models.ForeignKey(RecordKey, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="record_key_shares",
    )
    recovery = models.ForeignKey(
        RecoveryKey,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="shares",
    )
    share = models.TextField(help_text="b64u(HPKE enc ‖ ciphertext of the PKCS#8 DER).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["record_key", "id"]
        verbose_name = "record key share"
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, recovery__isnull=True)
                | Q(user__isnull=True, recovery__isnull=False),
                name="record_key_share_user_xor_recovery",
            ),
            models.UniqueConstraint(
                fields=["record_key", "user"], name="record_key_share_unique_user"
            ),
            models.UniqueConstraint(
                fields=["record_key", "recovery"], name="record_key_share_unique_recovery"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_key} → {self.user or self.recovery}"


__all__ += ["RecordKey", "RecordKeyShare", "RecoveryKey", "UserKey"]
