"""One exception type for bad user input; CLIs print it as one line instead of a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class LwError(Exception):
    """A user-facing error: bad name, missing file, corrupt checkpoint, invalid config, NaN loss."""


def unknown_name(kind: str, name: object, known: Iterable[str]) -> LwError:
    return LwError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")


def cli_errors(main: F) -> F:
    """Decorate a CLI entry point: an LwError exits 2 with `error: <message>` on one line."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except LwError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
