"""A small HTTP client of the keeperpam API: token auth, pagination, one-line errors.

Every error the server can answer is turned into an :class:`ApiError` whose
text is one line a user understands; a 404 says "not found or not
permitted", because the API deliberately does not tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

__all__ = ["ApiClient", "ApiError", "NotFoundOrNotPermitted", "api_base"]

API_PREFIX = "api/v1/"
TIMEOUT = 60  # seconds per request; parts are small, so this is generous
USER_AGENT = "keeperpam-cli/1"


class ApiError(Exception):
    """The server refused a request, or could not be reached; ``str()`` is one line."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundOrNotPermitted(ApiError):
    """A 404: the object does not exist, or the caller may not see it (the API hides which)."""


def api_base(url: str) -> str:
    """Normalise a server URL as typed by the user into its API base (``…/api/v1/``)."""
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(f"not a server URL: {url!r}")
    path = parts.path.rstrip("/") + "/"
    if path.endswith("/" + API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urlunsplit((parts.scheme, parts.netloc, path + API_PREFIX, "", ""))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _detail(response: requests.Response) -> str:
    """The server's explanation: ``detail`` of the JSON error body, else the status text."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        if body.get("detail"):
            return _one_line(body["detail"])
        if body.get("non_field_errors"):
            return _one_line("; ".join(map(str, body["non_field_errors"])))
        return _one_line("; ".join(f"{key}: {value}" for key, value in body.items()))
    return _one_line(str(body))


class ApiClient:
    """Calls the API under ``base`` (``https://host/api/v1/``), with a token if given."""

    def __init__(self, base: str, token: str | None = None,
                 session: requests.Session | None = None) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        self.http.headers["Accept"] = "application/json"
        if token:
            self.http.headers["Authorization"] = f"Token {token}"

    # --- URLs --------------------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        """An absolute URL on this server for an API path or a URL the server returned.

        URLs from the server (pagination links, part URLs) are re-anchored on
        the configured origin: the token is never sent to another host, and a
        proxy that makes the server believe it is on plain http does not
        downgrade the client.
        """
        if "://" not in path_or_url:
            return urljoin(self.base, path_or_url.lstrip("/"))
        given, base = urlsplit(path_or_url), urlsplit(self.base)
        return urlunsplit((base.scheme, base.netloc, given.path, given.query, ""))

    # --- requests ----------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, ok: tuple[int, ...] = (200, 201)) -> requests.Response:
        """Send one request; return the response if its status is in ``ok``, else raise."""
        url = self.url(path)
        try:
            response = self.http.request(method, url, params=params, json=json,
                                         timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach {urlsplit(url).netloc}: {type(exc).__name__}") from exc
        if response.status_code in ok:
            return response
        raise self.error(response)

    @staticmethod
    def error(response: requests.Response) -> ApiError:
        """The :class:`ApiError` for a refused request."""
        status = response.status_code
        if status == 404:
            return NotFoundOrNotPermitted("not found or not permitted", status=404)
        if status == 401:
            return ApiError("not logged in, or the token was revoked: run `login` again",
                            status=401)
        if status == 403:
            return ApiError(f"not permitted: {_detail(response)}", status=403)
        if status == 400:
            return ApiError(_detail(response), status=400)
        return ApiError(f"the server answered {status}: {_detail(response)}", status=status)

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET a JSON document."""
        return self.request("GET", path, params=params).json()

    def post(self, path: str, json: Any, *, ok: tuple[int, ...] = (200, 201)) -> Any:
        """POST JSON; return the JSON answer (None if empty)."""
        response = self.request("POST", path, json=json, ok=ok)
        return response.json() if response.content else None

    def put(self, path: str, json: Any) -> Any:
        """PUT JSON; return the JSON answer."""
        return self.request("PUT", path, json=json).json()

    def paginate(self, path: str, *, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Yield every item of a list endpoint, following ``next`` links (or a bare list)."""
        page: Any = self.get(path, params=params)
        while True:
            if isinstance(page, list):
                yield from page
                return
            yield from page.get("results", [])
            following = page.get("next")
            if not following:
                return
            page = self.get(following)

    def download(self, url: str, *, on_bytes: Callable[[int], None] | None = None) -> bytes:
        """GET raw bytes (a sealed part), reporting progress as they arrive."""
        target = self.url(url)
        try:
            with self.http.get(target, stream=True, timeout=TIMEOUT,
                               # The part view negotiates with DRF's renderers, which
                               # answer 406 to a bare application/octet-stream.
                               headers={"Accept": "application/octet-stream, */*;q=0.1"},
                               ) as response:
                if response.status_code != 200:
                    raise self.error(response)
                chunks = []
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    chunks.append(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                return b"".join(chunks)
        except requests.RequestException as exc:
            raise ApiError(
                f"cannot reach {urlsplit(target).netloc}: {type(exc).__name__}") from exc
