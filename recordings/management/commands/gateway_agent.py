"""``manage.py gateway_agent``: the reference gateway agent for guacd recordings.

Watches guacd's ``recording-path`` (graphical ``NAME`` dumps) and
``typescript-path`` (``NAME`` + ``NAME.timing``); for each new recording it
opens a session over the API, streams every file with tuspy *while guacd is
still writing it* (deferred-length uploads, appending what has grown), and
closes the session once the files stop changing for ``--idle`` seconds, first
telling the server each upload's final length. Files are matched by ``NAME``;
a name starting with ``<record id>-`` picks the record, otherwise ``--record``.
Only needs the vault's URL and a gateway credential: it runs anywhere.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tusclient import client as tus_client

TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Tracked:
    """One recording (by NAME) being streamed."""

    name: str
    session: str
    files: dict[str, Path] = field(default_factory=dict)  # format -> path
    urls: dict[str, str] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    changed_at: float = field(default_factory=time.monotonic)


class Command(BaseCommand):
    help = "Stream guacd recordings to the vault with tus while they are written."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="Vault base URL.")
        parser.add_argument("--token", required=True, help="Gateway credential (kpg_…).")
        parser.add_argument("--recording-path", type=Path)
        parser.add_argument("--typescript-path", type=Path)
        parser.add_argument("--record", type=int, help="Record id for names without one.")
        parser.add_argument("--launched-by", default="guacd")
        parser.add_argument("--idle", type=float, default=30.0,
                            help="Seconds without growth after which a recording is done.")
        parser.add_argument("--poll", type=float, default=1.0)
        parser.add_argument("--once", action="store_true",
                            help="Stop when every recording seen is closed.")
        parser.add_argument("--chunk-size", type=int, default=4 << 20)

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["recording_path"] and not options["typescript_path"]:
            raise CommandError("Give --recording-path and/or --typescript-path.")
        self.options = options
        self.base = options["url"].rstrip("/")
        self.headers = {"Authorization": f"Gateway {options['token']}"}
        self.tracked: dict[str, Tracked] = {}
        self.done: set[str] = set()
        while True:
            self.scan()
            for item in list(self.tracked.values()):
                self.push(item)
            if options["once"] and not self.tracked and self.done:
                return
            time.sleep(options["poll"])

    # --- discovery

    def _found(self) -> dict[str, dict[str, Path]]:
        found: dict[str, dict[str, Path]] = {}
        if self.options["recording_path"]:
            for path in self.options["recording_path"].iterdir():
                if path.is_file() and not path.name.startswith("."):
                    found.setdefault(path.name.removesuffix(".guac"), {})["guac"] = path
        if self.options["typescript_path"]:
            for path in self.options["typescript_path"].iterdir():
                if not path.is_file() or path.name.startswith("."):
                    continue
                if path.name.endswith(".timing"):
                    found.setdefault(path.name.removesuffix(".timing"), {})["timing"] = path
                else:
                    found.setdefault(path.name, {})["typescript"] = path
        return found

    def scan(self) -> None:
        for name, files in self._found().items():
            if name in self.done:
                continue
            item = self.tracked.get(name)
            if item is None:
                record = self._record_for(name)
                if record is None:
                    continue
                response = requests.post(f"{self.base}/api/v1/gateway/sessions/",
                                         headers=self.headers, timeout=30,
                                         json={"record": record, "protocol": self._protocol(),
                                               "launched_by": self.options["launched_by"]})
                if response.status_code != 201:
                    self.stderr.write(f"{name}: cannot open a session: {response.text}")
                    self.done.add(name)
                    continue
                answer = response.json()
                item = self.tracked[name] = Tracked(name, answer["id"])
                self.stdout.write(f"{name}: session {answer['id']} ({answer['status']})")
                if not answer["recorded"]:
                    self.close(item)
                    continue
            for fmt, path in files.items():
                if fmt not in item.files:
                    item.files[fmt] = path
                    item.urls[fmt] = self._create(item.session, fmt)
                    item.sent[fmt] = 0

    def _protocol(self) -> str:
        return self.options.get("protocol") or "ssh"

    def _record_for(self, name: str) -> int | None:
        head = name.split("-", 1)[0]
        if head.isdigit():
            return int(head)
        return self.options["record"]

    def _create(self, session: str, fmt: str) -> str:
        metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                            for k, v in (("session", session), ("format", fmt)))
        response = requests.post(f"{self.base}/api/v1/gateway/uploads/", timeout=30,
                                 headers={**self.headers, **TUS, "Upload-Defer-Length": "1",
                                          "Upload-Metadata": metadata})
        response.raise_for_status()
        return response.headers["Location"]

    # --- streaming

    def push(self, item: Tracked) -> None:
        grew = False
        for fmt, path in item.files.items():
            size = path.stat().st_size
            if size > item.sent[fmt]:
                client = tus_client.TusClient(item.urls[fmt], headers=self.headers)
                uploader = client.uploader(file_path=str(path), url=item.urls[fmt],
                                           chunk_size=self.options["chunk_size"], retries=5,
                                           retry_delay=2)
                uploader.upload(stop_at=size)  # HEAD first: resumes at the server's offset
                item.sent[fmt] = uploader.offset
                grew = True
        now = time.monotonic()
        if grew:
            item.changed_at = now
        elif now - item.changed_at >= self.options["idle"]:
            self.close(item)

    def close(self, item: Tracked) -> None:
        for fmt, url in item.urls.items():
            # Tell the final length (deferred until now) with an empty PATCH.
            requests.patch(url, data=b"", timeout=30, headers={
                **self.headers, **TUS, "Upload-Offset": str(item.sent[fmt]),
                "Upload-Length": str(item.sent[fmt]),
                "Content-Type": "application/offset+octet-stream"}).raise_for_status()
        response = requests.post(f"{self.base}/api/v1/gateway/sessions/{item.session}/close/",
                                 headers=self.headers, json={}, timeout=300)
        self.stdout.write(f"{item.name}: closed ({response.status_code})")
        self.tracked.pop(item.name, None)
        self.done.add(item.name)
