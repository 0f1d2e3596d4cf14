"""``manage.py demo_setup``: a believable organisation to click through, made idempotently.

Everything the vault and the policies own is written through their services,
so the demo data carries the same audit trail and guardian rows as data made
in the admin console. Each run converges on the same facts: objects that exist
and match are left alone (no new rows, no new audit events), objects that
drifted are put back through the services, and the same logins are reported.

The command lives in ``recordings`` because it writes roles and gateways and
imports sessions, and ``vault`` must not import ``policies`` nor ``recordings``
(vault ← policies ← recordings).
"""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from keeperpam.celery import app as celery_app
from keeperpam.crypto import keys as crypto_keys
from policies import services as policy_services
from policies.choices import Policy
from policies.models import Role
from recordings.choices import SessionStatus
from recordings.models import Session, Stream
from recordings.services import IngestError, gateway_demo_ensure, session_import
from vault import key_services
from vault import services as vault_services
from vault.choices import AccessLevel, Protocol, RecordType
from vault.models import (
    FolderMembership,
    PamConfiguration,
    Record,
    RecordShare,
    SharedFolder,
    UserKey,
)
from vault.protocols import DEFAULT_PORTS, supports_text_recording

DEFAULT_URL = "http://127.0.0.1:8000/"

# ------------------------------------------------------------------ the organisation
# Demo passwords are fixed on purpose: the README documents them and scripts log in
# with them. They are fine for a laptop and the reason the command refuses to run in
# production mode.


@dataclass(frozen=True)
class DemoUser:
    key: str
    username: str
    password: str
    first_name: str
    last_name: str
    demonstrates: str
    is_superuser: bool = False
    is_staff: bool = False
    groups: tuple[str, ...] = ()

    @property
    def email(self) -> str:
        return f"{self.username}@corp.example.com"


USERS: tuple[DemoUser, ...] = (
    DemoUser(
        key="admin",
        username="admin",
        password="Vault-Admin-4821!",  # noqa: S106 - documented demo password
        first_name="Avery",
        last_name="Admin",
        is_superuser=True,
        is_staff=True,
        demonstrates=(
            "Superuser: configures everything in the admin console, yet holds no view "
            "policy, so even the admin cannot play recordings (separation of duties)."
        ),
    ),
    DemoUser(
        key="auditor",
        username="auditor",
        password="Audit-Trail-7356!",  # noqa: S106 - documented demo password
        first_name="Maya",
        last_name="Okafor",
        groups=("Security Audit",),
        demonstrates=(
            "Privileged auditor: the Session Auditor role (Can view session recordings, "
            "Can view RBI session recordings) through the Security Audit group, and "
            "view-only access through the Production shared folder: may play and "
            "download the recordings of every Production record."
        ),
    ),
    DemoUser(
        key="engineer",
        username="engineer",
        password="Config-Change-5194!",  # noqa: S106 - documented demo password
        first_name="Sam",
        last_name="Rivera",
        is_staff=True,
        groups=("Platform Engineering",),
        demonstrates=(
            "Engineer: the Infrastructure Engineer role (Can configure connection "
            "settings) and edit access to Production: may change machines, databases, "
            "directories and PAM configurations, but may not view any recording."
        ),
    ),
    DemoUser(
        key="no_access",
        username="observer",
        password="Policy-Only-2683!",  # noqa: S106 - documented demo password
        first_name="Lee",
        last_name="Novak",
        demonstrates=(
            "View policy without access: the Compliance Observer role holds Can view "
            "session recordings, but no record is shared with this user, so they see "
            "no records and no recordings."
        ),
    ),
)

GROUPS: tuple[str, ...] = ("Platform Engineering", "Security Audit")


@dataclass(frozen=True)
class DemoRole:
    name: str
    description: str
    policies: tuple[str, ...]
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


ROLES: tuple[DemoRole, ...] = (
    DemoRole(
        name="Session Auditor",
        description="Reviews privileged sessions, including remote-browsing sessions.",
        policies=(Policy.VIEW_RECORDINGS, Policy.VIEW_RBI_RECORDINGS),
        groups=("Security Audit",),
    ),
    DemoRole(
        name="Infrastructure Engineer",
        description="Maintains connection settings of machines, databases and directories.",
        policies=(Policy.CONFIGURE_CONNECTIONS,),
        groups=("Platform Engineering",),
    ),
    DemoRole(
        name="Compliance Observer",
        description="May view recordings of records explicitly shared with them.",
        policies=(Policy.VIEW_RECORDINGS,),
        users=("observer",),
    ),
)

PRODUCTION_DC = "Production Datacenter"
PARTNER_DMZ = "Partner DMZ (graphical only)"

CONFIGURATIONS: tuple[dict[str, Any], ...] = (
    {
        "name": PRODUCTION_DC,
        "description": "Gateway gw-prod-01 in the primary datacenter.",
        "environment": PamConfiguration.Environment.LOCAL,
        "network_cidr": "10.20.0.0/16",
        "connections_enabled": True,
        "tunneling_enabled": True,
        "allow_graphical_recording": True,
        "allow_text_recording": True,
    },
    {
        "name": PARTNER_DMZ,
        "description": (
            "Gateway gw-dmz-01 for vendor access: sessions are recorded on screen only; "
            "text (typescript) recording is not allowed here."
        ),
        "environment": PamConfiguration.Environment.AWS,
        "network_cidr": "10.40.8.0/24",
        "connections_enabled": True,
        "tunneling_enabled": False,
        "allow_graphical_recording": True,
        "allow_text_recording": False,
    },
)

PRODUCTION_FOLDER = "Production"
FOLDERS: tuple[dict[str, str], ...] = (
    {"name": PRODUCTION_FOLDER, "description": "Production infrastructure and business systems."},
)

# (folder, member kind, member name, access)
FOLDER_MEMBERS: tuple[tuple[str, str, str, str], ...] = (
    (PRODUCTION_FOLDER, "group", "Security Audit", AccessLevel.VIEW),
    (PRODUCTION_FOLDER, "group", "Platform Engineering", AccessLevel.EDIT),
    (PRODUCTION_FOLDER, "user", "admin", AccessLevel.SHARE),
)


@dataclass(frozen=True)
class DemoRecord:
    name: str
    record_type: str
    protocol: str
    configuration: str
    folder: str | None
    host: str = ""
    url: str = ""
    notes: str = ""
    graphical_recording: bool = True
    # Left None to mean "on wherever the protocol can record text".
    text_recording: bool | None = None
    port: int | None = None


RECORDS: tuple[DemoRecord, ...] = (
    DemoRecord("web-prod-01 (Linux web server)", RecordType.MACHINE, Protocol.SSH,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="web-prod-01.corp.example.com",
               notes="nginx + the customer storefront."),
    DemoRecord("fs-prod-01 (Windows file server)", RecordType.MACHINE, Protocol.RDP,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="fs-prod-01.corp.example.com",
               notes="Windows Server 2022, department shares."),
    DemoRecord("build-mac-01 (macOS build agent)", RecordType.MACHINE, Protocol.VNC,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="build-mac-01.corp.example.com",
               notes="Screen Sharing on the iOS release build agent."),
    DemoRecord("core-sw-01 (core switch console)", RecordType.MACHINE, Protocol.TELNET,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="core-sw-01.corp.example.com",
               notes="Out-of-band console of the datacenter core switch."),
    DemoRecord("orders-db (MySQL)", RecordType.DATABASE, Protocol.MYSQL,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="mysql-orders-01.corp.example.com",
               notes="Order management, MySQL 8."),
    DemoRecord("billing-db (PostgreSQL)", RecordType.DATABASE, Protocol.POSTGRESQL,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="pg-billing-01.corp.example.com",
               notes="Invoices and payments, PostgreSQL 16. Recorded as text only: "
                     "queries matter, pixels do not.",
               graphical_recording=False),
    DemoRecord("crm-db (SQL Server)", RecordType.DATABASE, Protocol.SQL_SERVER,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="mssql-crm-01.corp.example.com",
               notes="CRM back end, SQL Server 2019."),
    DemoRecord("corp-dc-01 (Active Directory domain controller)", RecordType.DIRECTORY,
               Protocol.RDP, PRODUCTION_DC, PRODUCTION_FOLDER, host="dc01.corp.example.com",
               notes="CORP.EXAMPLE.COM domain controller."),
    DemoRecord("ldap-01 (OpenLDAP directory)", RecordType.DIRECTORY, Protocol.SSH,
               PRODUCTION_DC, PRODUCTION_FOLDER, host="ldap-01.corp.example.com",
               notes="Directory for Linux hosts."),
    DemoRecord("Grafana (internal dashboards)", RecordType.REMOTE_BROWSING, Protocol.RBI,
               PRODUCTION_DC, PRODUCTION_FOLDER, url="https://grafana.corp.example.com/",
               notes="Opened through remote browser isolation."),
    DemoRecord("HR portal", RecordType.REMOTE_BROWSING, Protocol.RBI,
               PRODUCTION_DC, PRODUCTION_FOLDER, url="https://hr.corp.example.com/login",
               notes="Payroll and personnel files."),
    DemoRecord("staging-api-01 (staging API server)", RecordType.MACHINE, Protocol.SSH,
               PRODUCTION_DC, None, host="staging-api-01.corp.example.com",
               notes="Outside any folder: shared directly with the engineer."),
    DemoRecord("vendor-bastion (partner SSH bastion)", RecordType.MACHINE, Protocol.SSH,
               PARTNER_DMZ, None, host="bastion.dmz.corp.example.com",
               notes="Text recording is on here, but the Partner DMZ configuration "
                     "allows graphical recording only, so only the screen is recorded."),
    DemoRecord("Partner portal", RecordType.REMOTE_BROWSING, Protocol.RBI,
               PARTNER_DMZ, None, url="https://partners.corp.example.com/",
               notes="Supplier self-service portal."),
)

# (record name, username, access): direct shares besides the creator's own.
DIRECT_SHARES: tuple[tuple[str, str, str], ...] = (
    ("staging-api-01 (staging API server)", "engineer", AccessLevel.EDIT),
    ("vendor-bastion (partner SSH bastion)", "auditor", AccessLevel.VIEW),
    ("Partner portal", "auditor", AccessLevel.VIEW),
)


# ------------------------------------------------------------ recorded sessions
# Record keys are wrapped only to users who enrolled a key, and sealing fails
# closed when there is nobody (record_key_for_sealing). So that a fresh demo has
# recordings to play, the command enrols the auditor the way a browser would:
# it makes the key pair here, protects it under a published DEMO passphrase and
# stores it through the same service as a client upload. Real users enrol in
# their browser and the server never sees their passphrase.

#: Public, like the demo passwords: the README and the command print it.
DEMO_VAULT_PASSPHRASE = "demo vault passphrase"  # noqa: S105 - documented demo passphrase
DEMO_VAULT_USER = "auditor"

#: Copies of the project's shared fixtures (real guacd and util-linux script
#: recordings), shipped with the app so the command needs neither tests/ nor ../shared.
DEMO_FIXTURES = Path(__file__).resolve().parents[2] / "demo_fixtures"


@dataclass(frozen=True)
class DemoSession:
    """A recorded session imported from fixture files through the ingest services.

    The demo gateway, the record, ``launched_by`` and ``client_address`` are what
    identify it on later runs (its start time is relative to the first run).
    """

    record: str
    launched_by: str
    client_address: str
    started_ago: timedelta
    #: The length of the fixture recording, so the listed duration is believable.
    duration: timedelta
    files: tuple[tuple[str, str], ...]  # (upload format, fixture file name)


DEMO_SESSIONS: tuple[DemoSession, ...] = (
    DemoSession("web-prod-01 (Linux web server)", "engineer", "10.8.12.41",
                timedelta(hours=3, minutes=12), timedelta(seconds=10),
                (("guac", "guacd-ssh-short.guac"),
                 ("typescript", "guacd-ssh-short.typescript"),
                 ("timing", "guacd-ssh-short.typescript.timing"))),
    DemoSession("billing-db (PostgreSQL)", "engineer", "10.8.12.41",
                timedelta(days=1, hours=5, minutes=47), timedelta(seconds=1),
                (("typescript", "util-linux-classic.tys"),
                 ("timing", "util-linux-classic.tm"))),
    # A vendor with no vault account, through the graphical-only Partner DMZ.
    DemoSession("vendor-bastion (partner SSH bastion)", "vendor.jdoe", "203.0.113.50",
                timedelta(days=2, hours=2, minutes=5), timedelta(seconds=10),
                (("guac", "guacd-ssh-short.guac"),)),
)


# --------------------------------------------------------------------- convergence


class DemoBuilder:
    """Makes the demo organisation exist, counting what it had to create or change."""

    def __init__(self) -> None:
        self.created = 0
        self.updated = 0
        self.users: dict[str, Any] = {}
        self.groups: dict[str, Group] = {}
        self.roles: list[Role] = []
        self.configurations: dict[str, PamConfiguration] = {}
        self.folders: dict[str, SharedFolder] = {}
        self.records: list[Record] = []
        self.sessions: list[Session] = []
        #: Sessions queued for a Celery worker (a broker is configured): not sealed yet.
        self.queued = 0

    @property
    def admin(self):
        return self.users["admin"]

    def build(self) -> None:
        # Users and groups belong to django.contrib.auth, which has no services of
        # ours; they are made the way ``createsuperuser`` makes them.
        for spec in USERS:
            self.users[spec.username] = self._user(spec)
        for name in GROUPS:
            self.groups[name] = self._group(name)
        for spec in USERS:
            self._group_memberships(spec)
        for spec in ROLES:
            self.roles.append(self._role(spec))
        for fields in CONFIGURATIONS:
            self.configurations[fields["name"]] = self._configuration(fields)
        for fields in FOLDERS:
            self.folders[fields["name"]] = self._folder(fields)
        for folder, kind, member, access in FOLDER_MEMBERS:
            self._folder_member(folder, kind, member, access)
        for spec in RECORDS:
            self.records.append(self._record(spec))
        records_by_name = {record.name: record for record in self.records}
        for record_name, username, access in DIRECT_SHARES:
            self._share(records_by_name[record_name], self.users[username], access)
        self._gateway()
        self._vault_key(self.users[DEMO_VAULT_USER])

    def import_sessions(self) -> None:
        """Import the demo sessions not imported yet, each as a gateway would upload it.

        Runs after :meth:`build` has committed, outside any transaction, like a
        gateway's requests: every upload commits on its own and the sealer
        task it enqueues runs (eagerly, or in a worker) after that commit.
        """
        records_by_name = {record.name: record for record in self.records}
        for spec in DEMO_SESSIONS:
            record = records_by_name[spec.record]
            session = self._demo_session(record, spec)
            if session is None:
                started = timezone.now() - spec.started_ago
                try:
                    session = session_import(
                        gateway=self.gateway, record=record, launched_by=spec.launched_by,
                        client_address=spec.client_address, started_at=started,
                        ended_at=started + spec.duration,
                        files={fmt: DEMO_FIXTURES / name for fmt, name in spec.files},
                    )
                except IngestError as exc:
                    raise CommandError(f"Could not import the demo session of {record}: {exc}"
                                       ) from exc
                self.created += 1
                self.queued += session.status in (SessionStatus.OPEN, SessionStatus.CLOSING)
            self.sessions.append(session)

    def _demo_session(self, record: Record, spec: DemoSession) -> Session | None:
        """The session an earlier run imported for ``spec``, if any (failed ones are retried)."""
        return (
            Session.objects.filter(gateway=self.gateway, record=record,
                                   launched_by=spec.launched_by,
                                   client_address=spec.client_address)
            .exclude(status__in=[SessionStatus.FAILED, SessionStatus.NOT_RECORDED])
            .order_by("created_at")
            .first()
        )

    def _vault_key(self, user) -> None:
        """Enrol ``user``'s key under the demo passphrase, unless they already have one.

        An existing key is never replaced, even one enrolled with another
        passphrase: record key shares are wrapped to it.
        """
        if UserKey.objects.filter(user=user).exists():
            return
        private_key = crypto_keys.record_key_generate()  # a P-256 pair, as a user key
        protected = crypto_keys.user_key_protect(
            private_key, passphrase=DEMO_VAULT_PASSPHRASE, user_id=str(user.pk),
            iterations=crypto_keys.DEFAULT_PBKDF2_ITERATIONS,
        )
        public_key = crypto_keys.b64u_encode(crypto_keys.public_key_der(private_key.public_key()))
        del private_key  # only the protected form leaves this method
        key_services.user_key_set(user=user, public_key=public_key,
                                  protected_private_key=protected)
        self.created += 1

    def _gateway(self) -> None:
        self.gateway, self.gateway_token, writes = gateway_demo_ensure(
            configurations=list(self.configurations.values()), acting_user=self.admin)
        self.created += writes

    # -- auth

    def _user(self, spec: DemoUser):
        user_model = get_user_model()
        user = user_model.objects.filter(username=spec.username).first()
        wanted = {
            "first_name": spec.first_name,
            "last_name": spec.last_name,
            "email": spec.email,
            "is_superuser": spec.is_superuser,
            "is_staff": spec.is_staff,
            "is_active": True,
        }
        if user is None:
            self.created += 1
            return user_model.objects.create_user(
                username=spec.username, password=spec.password, **wanted
            )
        changed = [name for name, value in wanted.items() if getattr(user, name) != value]
        for name in changed:
            setattr(user, name, wanted[name])
        # The printed password must work: put it back if someone changed it.
        if not user.check_password(spec.password):
            user.set_password(spec.password)
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
            self.updated += 1
        return user

    def _group(self, name: str) -> Group:
        group, created = Group.objects.get_or_create(name=name)
        self.created += created
        return group

    def _group_memberships(self, spec: DemoUser) -> None:
        user = self.users[spec.username]
        have = set(user.groups.values_list("name", flat=True))
        missing = [self.groups[name] for name in spec.groups if name not in have]
        if missing:
            user.groups.add(*missing)
            self.created += len(missing)

    # -- policies

    def _role(self, spec: DemoRole) -> Role:
        fields: dict[str, Any] = {"description": spec.description}
        fields.update({policy: policy in spec.policies for policy in Policy.values})
        users = [self.users[name] for name in spec.users]
        groups = [self.groups[name] for name in spec.groups]
        role = Role.objects.filter(name=spec.name).first()
        if role is None:
            self.created += 1
            return policy_services.role_create(
                acting_user=self.admin, name=spec.name, users=users, groups=groups, **fields
            )
        same_fields = all(getattr(role, name) == value for name, value in fields.items())
        same_users = set(role.users.values_list("pk", flat=True)) >= {u.pk for u in users}
        same_groups = set(role.groups.values_list("pk", flat=True)) >= {g.pk for g in groups}
        if same_fields and same_users and same_groups:
            return role
        self.updated += 1
        # Add the demo members to whoever else was given the role since.
        return policy_services.role_update(
            role=role,
            acting_user=self.admin,
            users={*role.users.all(), *users},
            groups={*role.groups.all(), *groups},
            **fields,
        )

    # -- vault

    def _configuration(self, fields: dict[str, Any]) -> PamConfiguration:
        configuration = PamConfiguration.objects.filter(name=fields["name"]).first()
        if configuration is None:
            self.created += 1
            return vault_services.configuration_create(acting_user=self.admin, **fields)
        diff = _differences(configuration, fields)
        if diff:
            self.updated += 1
            vault_services.configuration_update(
                configuration=configuration, acting_user=self.admin, **diff
            )
        return configuration

    def _folder(self, fields: dict[str, str]) -> SharedFolder:
        folder = SharedFolder.objects.filter(name=fields["name"]).first()
        if folder is None:
            self.created += 1
            return vault_services.folder_create(acting_user=self.admin, **fields)
        diff = _differences(folder, fields)
        if diff:
            self.updated += 1
            vault_services.folder_update(folder=folder, acting_user=self.admin, **diff)
        return folder

    def _folder_member(self, folder_name: str, kind: str, member: str, access: str) -> None:
        folder = self.folders[folder_name]
        lookup = {"user": self.users[member]} if kind == "user" else {"group": self.groups[member]}
        membership = FolderMembership.objects.filter(folder=folder, **lookup).first()
        if membership is not None and membership.access == access:
            return
        if membership is None:
            self.created += 1
        else:
            self.updated += 1
        vault_services.folder_member_set(
            folder=folder, acting_user=self.admin, access=access, **lookup
        )

    def _record(self, spec: DemoRecord) -> Record:
        text = supports_text_recording(spec.protocol) if spec.text_recording is None else (
            spec.text_recording
        )
        fields: dict[str, Any] = {
            "record_type": spec.record_type,
            "protocol": spec.protocol,
            "host": spec.host,
            "port": spec.port if spec.port is not None else (
                None if spec.record_type == RecordType.REMOTE_BROWSING
                else DEFAULT_PORTS.get(spec.protocol)
            ),
            "url": spec.url,
            "configuration": self.configurations[spec.configuration],
            "folder": self.folders[spec.folder] if spec.folder else None,
            "graphical_recording": spec.graphical_recording,
            "text_recording": text,
            "notes": spec.notes,
        }
        record = Record.objects.filter(name=spec.name).order_by("pk").first()
        if record is None:
            self.created += 1
            return vault_services.record_create(acting_user=self.admin, name=spec.name, **fields)
        diff = _differences(record, fields)
        if diff:
            self.updated += 1
            vault_services.record_update(record=record, acting_user=self.admin, **diff)
        return record

    def _share(self, record: Record, user, access: str) -> None:
        share = RecordShare.objects.filter(record=record, user=user).first()
        if share is not None and share.access == access:
            return
        if share is None:
            self.created += 1
        else:
            self.updated += 1
        vault_services.record_share_grant(
            record=record, user=user, access=access, acting_user=self.admin
        )


def _streams(session: Session) -> dict[str, str]:
    """Each stream of the session's recording with its state (none if nothing is recorded)."""
    return dict(
        sorted(Stream.objects.filter(recording__session=session).values_list("kind", "state"))
    )


def _differences(instance, wanted: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``wanted`` that ``instance`` does not already have (FKs by pk)."""
    diff: dict[str, Any] = {}
    for name, value in wanted.items():
        current = getattr(instance, name)
        if hasattr(value, "pk") or hasattr(current, "pk"):
            if getattr(current, "pk", None) != getattr(value, "pk", None):
                diff[name] = value
        elif current != value:
            diff[name] = value
    return diff


# ------------------------------------------------------------------------- command


class Command(BaseCommand):
    help = (
        "Create (or bring back) the demo organisation: users, groups, roles, PAM "
        "configurations, a shared folder and records of every type and protocol. "
        "Idempotent; prints the logins."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object (for scripts) only."
        )
        parser.add_argument(
            "--url", default=DEFAULT_URL, help=f"Base URL to print (default {DEFAULT_URL})."
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with KEEPERPAM_PRODUCTION on (demo passwords are public!).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if getattr(settings, "PRODUCTION", False) and not options["allow_production"]:
            raise CommandError(
                "Refusing to create demo users with published passwords in production mode "
                "(KEEPERPAM_PRODUCTION is on); pass --allow-production to insist."
            )
        builder = DemoBuilder()
        with transaction.atomic():
            builder.build()
        builder.import_sessions()
        summary = self.summary(builder, options["url"])
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.print_human(builder, summary)
        if builder.queued and not celery_app.conf.task_always_eager:
            # stderr, so that --json output stays one JSON object.
            note = (f"Note: {builder.queued} demo session(s) were queued for sealing "
                    "(CELERY_BROKER_URL is set): a Celery worker must run (`make worker`) "
                    "before they can be played.")
            (sys.stderr if options["json"] else self.stdout).write(note + "\n")

    @staticmethod
    def summary(builder: DemoBuilder, url: str) -> dict[str, Any]:
        """The facts a script needs to drive the demo instance."""
        base = url if url.endswith("/") else url + "/"
        return {
            "url": base,
            "admin_url": urljoin(base, reverse("admin:index").lstrip("/")),
            "api_docs_url": urljoin(base, reverse("api-docs").lstrip("/")),
            "users": {
                spec.key: {
                    "username": spec.username,
                    "password": spec.password,
                    "id": builder.users[spec.username].pk,
                    "demonstrates": spec.demonstrates,
                    **({"vault_passphrase": DEMO_VAULT_PASSPHRASE}
                       if spec.username == DEMO_VAULT_USER else {}),
                }
                for spec in USERS
            },
            "records": [
                {
                    "id": record.pk,
                    "name": record.name,
                    "record_type": record.record_type,
                    "protocol": record.protocol,
                    "configuration_id": record.configuration_id,
                    "folder_id": record.folder_id,
                }
                for record in builder.records
            ],
            "folders": [{"id": f.pk, "name": f.name} for f in builder.folders.values()],
            "roles": [
                {
                    "id": role.pk,
                    "name": role.name,
                    "policies": [p for p in Policy.values if getattr(role, p)],
                }
                for role in builder.roles
            ],
            "groups": [{"id": g.pk, "name": g.name} for g in builder.groups.values()],
            "configurations": [
                {
                    "id": c.pk,
                    "name": c.name,
                    "allow_graphical_recording": c.allow_graphical_recording,
                    "allow_text_recording": c.allow_text_recording,
                }
                for c in builder.configurations.values()
            ],
            "gateway": {"id": builder.gateway.pk, "name": builder.gateway.name,
                        "token": builder.gateway_token},
            "sessions": [
                {
                    "id": str(session.pk),
                    "record": session.record_id,
                    "launched_by": session.launched_by,
                    "status": session.status,
                    "streams": _streams(session),
                }
                for session in builder.sessions
            ],
        }

    def print_human(self, builder: DemoBuilder, summary: dict[str, Any]) -> None:
        write = self.stdout.write
        if builder.created or builder.updated:
            status = f"{builder.created} created, {builder.updated} brought back to demo state"
        else:
            status = "already in place, nothing changed"
        write(self.style.SUCCESS(f"Demo organisation ready ({status})."))
        write("")
        write(f"  Vault:          {summary['url']}")
        write(f"  Admin console:  {summary['admin_url']}")
        write(f"  API docs:       {summary['api_docs_url']}")
        write(f"  Demo gateway:   {summary['gateway']['name']} "
              f"(credential {summary['gateway']['token']})")
        write("")
        write("  Logins (demo passwords: never use them on a real deployment):")
        for spec in USERS:
            write(f"    {spec.username:<10} {spec.password}")
            for line in textwrap.wrap(spec.demonstrates, width=84):
                write(f"        {line}")
        write("")
        write(f"  Vault passphrase of {DEMO_VAULT_USER}: {DEMO_VAULT_PASSPHRASE!r} (public too)")
        for line in textwrap.wrap(
            f"The demo pre-enrols the {DEMO_VAULT_USER}'s key so recordings exist (record keys "
            "are wrapped only to enrolled users); unlock it with this passphrase to play "
            "them. Real users enrol in their browser and the server never sees their "
            "passphrase.", width=84):
            write(f"        {line}")
        write("")
        write(f"  Records ({len(builder.records)}):")
        for record in builder.records:
            effective = record.effective_recording()
            recorded = [kind for kind, on in (("graphical", effective.graphical),
                                               ("text", effective.text)) if on]
            where = record.folder.name if record.folder else "direct shares"
            protocol = "RBI" if record.protocol == Protocol.RBI else record.get_protocol_display()
            write(
                f"    {record.get_record_type_display():<20} {protocol:<11}"
                f" {record.name}  [{where}; records {' + '.join(recorded) or 'nothing'}]"
            )
        write("")
        write(f"  Recorded sessions ({len(builder.sessions)}, gateway {builder.gateway.name}):")
        for session in builder.sessions:
            streams = ", ".join(f"{kind} {state}" for kind, state in _streams(session).items())
            write(f"    {session.started_at:%Y-%m-%d %H:%M} {session.launched_by:<12}"
                  f" {session.record.name}  [{session.get_status_display().lower()}; {streams}]")
