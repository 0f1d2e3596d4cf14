"""How every subcommand fails: one line on stderr and an exit code (see ``keeperpam.cli``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from keeperpam.cli import EXIT_ERROR, EXIT_INCOMPLETE, EXIT_KEY, EXIT_TAMPERED
from keeperpam.crypto.errors import (
    IncompleteStream,
    KeyAccessError,
    KsrError,
    MalformedKey,
    TamperedPart,
)

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure to report as one line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int) -> int:
    """Print ``message`` on stderr and return ``code``."""
    print(message, file=sys.stderr)
    return code


def one_line_errors(handler: Handler, *, errors: tuple[type[Exception], ...] = ()) -> Handler:
    """Wrap a handler so every known failure becomes one line and an exit code.

    ``errors`` are further exception types (the API client's) reported as
    plain errors.
    """

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except IncompleteStream as exc:
            message = str(exc)
            if not message.startswith("incomplete:"):
                message = f"incomplete: {message}"
            return fail(message, EXIT_INCOMPLETE)
        except TamperedPart as exc:
            return fail(f"tampered: {exc}", EXIT_TAMPERED)
        except (KeyAccessError, MalformedKey) as exc:
            return fail(f"key: {exc}", EXIT_KEY)
        except CommandError as exc:
            return fail(str(exc), exc.code)
        except (OSError, ValueError, KsrError, *errors) as exc:
            return fail(f"error: {exc}", EXIT_ERROR)
        except KeyboardInterrupt:
            return fail("error: interrupted", 130)

    return wrapped
