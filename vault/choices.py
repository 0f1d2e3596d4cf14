"""Enumerations of the vault: record types, protocols, access levels."""

from django.db import models


class RecordType(models.TextChoices):
    MACHINE = "pamMachine", "PAM Machine"
    DATABASE = "pamDatabase", "PAM Database"
    DIRECTORY = "pamDirectory", "PAM Directory"
    REMOTE_BROWSING = "pamRemoteBrowser", "PAM Remote Browsing"


class Protocol(models.TextChoices):
    SSH = "ssh", "SSH"
    RDP = "rdp", "RDP"
    VNC = "vnc", "VNC"
    TELNET = "telnet", "Telnet"
    MYSQL = "mysql", "MySQL"
    POSTGRESQL = "postgresql", "PostgreSQL"
    SQL_SERVER = "sql-server", "SQL Server"
    RBI = "http", "Remote Browser Isolation"


class AccessLevel(models.TextChoices):
    """What a share or a folder membership lets its holder do with a record.

    Levels are cumulative: *edit* includes *view only*, *share* includes both.
    """

    VIEW = "view", "View only"
    EDIT = "edit", "Can edit"
    SHARE = "share", "Can share"


class AuditAction(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    DELETE = "delete", "Deleted"
    GRANT = "grant", "Access granted"
    REVOKE = "revoke", "Access revoked"
