"""Where the online CLI keeps its settings: the server URL, the API token and who it is.

One JSON file, ``$XDG_CONFIG_HOME/keeperpam/config.json`` (else
``~/.config/keeperpam/config.json``), readable only by its owner. It holds
what ``login`` learned and nothing secret beyond the API token: never the
password, the vault passphrase or an unwrapped key, which the commands that
need them ask for again each time.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = ["ConfigError", "Settings", "config_dir", "config_file", "settings_clear",
           "settings_load", "settings_save"]

CONFIG_NAME = "config.json"


class ConfigError(Exception):
    """The settings are missing (not logged in) or unreadable."""


@dataclass(frozen=True)
class Settings:
    """What ``login`` stores: enough to call the API as the logged-in user."""

    url: str
    username: str
    user_id: int
    token: str


def config_dir() -> Path:
    """The CLI's config directory, following the XDG base directory convention."""
    base = os.environ.get("XDG_CONFIG_HOME")
    # XDG says a relative value is invalid and must be ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "keeperpam"


def config_file() -> Path:
    """The settings file."""
    return config_dir() / CONFIG_NAME


def settings_save(settings: Settings) -> Path:
    """Write the settings atomically, owner-only (0600, directory 0700); return the path."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / CONFIG_NAME
    # mkstemp creates the file 0600 before any byte of the token is written.
    fd, temporary = tempfile.mkstemp(prefix=".config-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(settings), handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def settings_load() -> Settings:
    """Read the settings; :class:`ConfigError` if there are none or they are damaged."""
    path = config_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("not logged in: run `login URL --username NAME` first") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; run `login` again") from exc
    names = {field.name for field in fields(Settings)}
    if not isinstance(data, dict) or not names <= data.keys():
        raise ConfigError(f"{path} is incomplete; run `login` again")
    return Settings(**{name: data[name] for name in names})


def settings_clear() -> bool:
    """Forget the settings (and the token); True if there was something to forget."""
    try:
        config_file().unlink()
    except FileNotFoundError:
        return False
    return True
