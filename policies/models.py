"""Roles: who holds which Privileged Access Manager enforcement policies."""

from django.conf import settings
from django.db import models


class Role(models.Model):
    """A named set of enforcement policies held by its member users and groups."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="pam_roles"
    )
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="pam_roles")
    can_configure_connections = models.BooleanField(
        "Can configure connection settings",
        default=False,
        help_text="Change PAM configurations and machine, database and directory records.",
    )
    can_view_recordings = models.BooleanField(
        "Can view session recordings",
        default=False,
        help_text="Play and download recordings of machine, database and directory records "
        "the member can access.",
    )
    can_configure_remote_browsing = models.BooleanField(
        "Can configure remote browsing",
        default=False,
        help_text="Change remote-browsing records.",
    )
    can_view_rbi_recordings = models.BooleanField(
        "Can view RBI session recordings",
        default=False,
        help_text="Play recordings of remote-browsing records the member can access.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
