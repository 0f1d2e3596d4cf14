"""Real-browser fixtures: Debian's Chromium driven by Playwright.

The KSR1 crypto tests need no Django: a tiny threaded static server on a
random loopback port serves vault/static at /static/ and node_modules at
/static/npm/ (the same layout as Django's STATICFILES_DIRS), plus one test
page that includes vault/templates/vault/_importmap.html rendered the way
``{% static %}`` would, so the real import map is what gets exercised.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = ROOT / "vault" / "static"
NPM_DIR = ROOT / "node_modules"
IMPORTMAP_TEMPLATE = ROOT / "vault" / "templates" / "vault" / "_importmap.html"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
TEST_PAGE = "/ksr1-test.html"


def render_importmap() -> str:
    """Render _importmap.html without Django: ``{% static 'x' %}`` → ``/static/x``.

    Quoting follows django.utils.encoding.filepath_to_uri, so ``@hpke`` is
    served as ``%40hpke`` exactly as it will be under Django.
    """
    text = IMPORTMAP_TEMPLATE.read_text()
    text = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", "", text, flags=re.S)
    text = re.sub(r"{%\s*load static\s*%}", "", text)
    return re.sub(
        r"{%\s*static\s+'([^']+)'\s*%}",
        lambda m: "/static/" + quote(m.group(1), safe="/~!*()'"),
        text,
    )


def ksr1_page_html() -> str:
    """The page every KSR1 test runs in: import map, then ksr1 on window."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ksr1</title>
{render_importmap()}
<script type="module">
  import * as ksr1 from "ksr1";
  window.ksr1 = ksr1;
  window.ksr1Ready = true;
</script>
</head><body></body></html>"""




class StaticHandler(SimpleHTTPRequestHandler):
    """Serves /static/npm/ from node_modules, /static/ from vault/static."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
    }

    def translate_path(self, path: str) -> str:
        path = unquote(urlsplit(path).path)
        for prefix, base in (("/static/npm/", NPM_DIR), ("/static/", STATIC_DIR)):
            if path.startswith(prefix):
                target = (base / path[len(prefix) :]).resolve()
                if target.is_relative_to(base.resolve()):
                    return str(target)
        return str(ROOT / "nonexistent")

    def do_GET(self) -> None:
        if urlsplit(self.path).path == TEST_PAGE:
            body = ksr1_page_html().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature is http.server's
        pass


@pytest.fixture(scope="session")
def static_server() -> Iterator[str]:
    """Base URL of a static server for vault/static and node_modules."""
    if not (NPM_DIR / "@hpke" / "core").is_dir():
        pytest.fail("node_modules is missing: run `npm ci` in the project root")
    handler = functools.partial(StaticHandler, directory=str(ROOT))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) per test module.

    Playwright's sync API runs an event loop in this thread while it is open;
    closing it with each module keeps that loop (and the ORM's async-safety
    waiver below) from leaking into the rest of the suite.
    """
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it with apt-get")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def ksr1_page(browser, static_server):
    """A fresh page with the ksr1 modules loaded as ``window.ksr1``.

    Page errors and failed requests fail the test: a module that does not
    load must not pass silently.
    """
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on(
        "response",
        lambda resp: resp.status >= 400 and problems.append(f"HTTP {resp.status}: {resp.url}"),
    )
    page.goto(static_server + TEST_PAGE)
    page.wait_for_function("window.ksr1Ready === true", timeout=10_000)
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API keeps an event loop running in this thread; the ORM, called
    from the test body (not from that loop), is safe. Module-scoped, so it is set before
    the database fixtures, and unset afterwards: subprocesses of other tests (``manage.py
    check --deploy``) must not inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield
