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
from recordings.models import Gateway
from vault.models import Record


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
        gateway = Gateway.objects.filter(name=options["gateway"]).first()
        record = Record.objects.select_related("configuration").filter(
            pk=options["record"]).first()
        if gateway is None or record is None:
            raise CommandError("Unknown gateway or record.")
        started = parse_datetime(options["started_at"]) if options["started_at"] else None
        try:
            session = services.session_import(gateway=gateway, record=record, files=files,
                                              launched_by=options["launched_by"],
                                              started_at=started)
        except services.IngestError as exc:
            raise CommandError(str(exc)) from exc
        for fmt, path in files.items():
            self.stdout.write(f"  {fmt}: {path} ({path.stat().st_size} bytes)")
        self.stdout.write(self.style.SUCCESS(f"Session {session.pk}: {session.status}"))
