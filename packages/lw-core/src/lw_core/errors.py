"""One exception type for bad user input; CLIs print it as one line instead of a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

from lw_registry.record import WRITE_ERRNOS

F = TypeVar("F", bound=Callable[..., object])


class LwError(Exception):
    """A user-facing error: bad name, missing file, corrupt checkpoint, invalid config, NaN loss."""


def unknown_name(kind: str, name: object, known: Iterable[str]) -> LwError:
    return LwError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")


def write_error_line(err: OSError) -> str:
    """`cannot write /runs/x/run.json: No space left on device` — what a user can act on, in one line."""
    where = f" {err.filename}" if err.filename else ""
    return f"cannot write{where}: {err.strerror or err}"


def cli_errors(main: F) -> F:
    """Decorate a CLI entry point: an LwError exits 2 with `error: <message>` on one line; so does a
    write the storage refuses (disk full, read-only), exiting 1, with what was written before kept."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except LwError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:
            if err.errno not in WRITE_ERRNOS:
                raise
            print(f"error: {write_error_line(err)}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
