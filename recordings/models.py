"""Gateways, sessions, streams and sealed parts (built by the ingest issue)."""

from django.db import models


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
