"""The keeperpam command line: ``python -m keeperpam.cli``.

Subcommands live in modules that each expose ``register(subparsers)``; the
offline ones (verify, decrypt, keygen, seal) need nothing but local files.
The online ones (login, enrol, records, sessions, download, grant, …) in
:mod:`keeperpam.cli.online` talk to a vault server.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMAND_MODULES", "EXIT_INCOMPLETE", "EXIT_TAMPERED", "main"]

#: Modules that contribute subcommands, in ``--help`` order.
COMMAND_MODULES = ("keeperpam.cli.offline", "keeperpam.cli.online")

EXIT_OK = 0
EXIT_ERROR = 1  # I/O and other errors that say nothing about the recording
EXIT_TAMPERED = 2  # a part is invalid: tampered, spliced, malformed or badly signed
EXIT_INCOMPLETE = 3  # authentic but the stream stops before its final part
EXIT_KEY = 4  # the given keys cannot open it (no recipient, wrong key file)
EXIT_USAGE = 64  # bad command line (sysexits EX_USAGE; argparse's own 2 means tampered here)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors do not reuse the "tampered" exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = _Parser(
        prog="python -m keeperpam.cli",
        description=(
            "keeperpam client: verify, decrypt and seal KSR1 session recordings offline, "
            "or log in to a vault to list, download and decrypt them locally."
        ),
        epilog=(
            "exit codes: 0 ok, 1 error, 2 tampered/invalid, 3 incomplete, "
            "4 key cannot open it, 64 usage"
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
