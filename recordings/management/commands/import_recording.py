"""``manage.py import_recording``: turn existing recording files into recorded sessions.

Accepts a ``.guac`` dump, a typescript + timing pair (guacd's ``NAME`` +
``NAME.timing`` or util-linux ``script``), and/or an asciicast v2 file. The
files go through the same services as a gateway's tus uploads (staged in
chunks, sealed by the Celery sealer), so the result is indistinguishable from
a live session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from recordings import services
from recordings.models import Gateway, Session
from vault.models import Record

CHUNK = 8 << 20


class Command(BaseCommand):
    help = "Import .guac, typescript+timing or asciicast files as a recorded session."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gateway", required=True, help="Name of the registered gateway.")
        parser.add_argument("--record", type=int, required=True, help="Record id.")
        parser.add_argument("--launched-by", default="import")
        parser.add_argument("--started-at", help="ISO 8601 start time (default: now).")
        parser.add_argument("--guac", type=Path)
        parser.add_argument("--typescript", type=Path)
        parser.add_argument("--timing", type=Path)
        parser.add_argument("--asciicast", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        files = {fmt: options[fmt] for fmt in ("guac", "typescript", "timing", "asciicast")
                 if options[fmt]}
        if not files:
            raise CommandError("Give at least one of --guac, --typescript/--timing, --asciicast.")
        if ("typescript" in files) != ("timing" in files):
            raise CommandError("--typescript and --timing go together.")
        for path in files.values():
            if not path.is_file():
                raise CommandError(f"{path} is not a file.")
        gateway = Gateway.objects.filter(name=options["gateway"]).first()
        record = Record.objects.select_related("configuration").filter(
            pk=options["record"]).first()
        if gateway is None or record is None:
            raise CommandError("Unknown gateway or record.")
        started = parse_datetime(options["started_at"]) if options["started_at"] else None
        try:
            session = services.session_open(gateway=gateway, record=record,
                                             protocol=record.protocol,
                                             launched_by=options["launched_by"],
                                             started_at=started)
            if session.status != "open":
                raise CommandError(f"Nothing to record: session is {session.status} "
                                   f"{session.error}".strip())
            for fmt, path in files.items():
                upload = services.upload_create(gateway=gateway, session_id=str(session.pk),
                                                format=fmt, length=path.stat().st_size)
                with open(path, "rb") as source:
                    offset = 0
                    while offset < upload.length:
                        upload = services.upload_append(upload_id=upload.pk, gateway=gateway,
                                                        offset=offset, body=source,
                                                        body_limit=CHUNK)
                        offset = upload.offset
                self.stdout.write(f"  {fmt}: {path} ({offset} bytes)")
            services.session_close(session=session)
        except services.IngestError as exc:
            raise CommandError(str(exc)) from exc
        session = Session.objects.get(pk=session.pk)
        self.stdout.write(self.style.SUCCESS(f"Session {session.pk}: {session.status}"))
