"""One exception type for bad user input; CLIs print it as one line instead of a traceback."""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from lw_registry.record import WRITE_ERRNOS

F = TypeVar("F", bound=Callable[..., object])


class LwError(Exception):
    """A user-facing error: bad name, missing file, corrupt checkpoint, invalid config, NaN loss."""


def unknown_name(kind: str, name: object, known: Iterable[str]) -> LwError:
    return LwError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")


PATH_ERRNOS = (errno.ENOTDIR, errno.EEXIST, errno.EISDIR)
"""A folder wanted where a file is (or the other way round): `$LW_RUNS`, `$LW_CACHE` or `--output-dir`
naming a file."""
FOLDER_VARIABLES = ("LW_RUNS", "LW_CACHE")


def _file_in_the_way(path: Path) -> Path | None:
    """`path` or its nearest existing ancestor, when that is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def _named_by(path: Path) -> str:
    """` ($LW_RUNS)` when an environment variable of lw names `path`, else nothing."""
    for name in FOLDER_VARIABLES:
        value = os.environ.get(name)
        if value and Path(value).expanduser().absolute() == path.absolute():
            return f" (${name})"
    return ""


def not_a_folder(path: str | Path) -> str | None:
    """`/x/runs is a file, not a folder ($LW_RUNS)` when a file stands where `path` or a folder above it
    should be, else None."""
    blocker = _file_in_the_way(Path(path).expanduser())
    return None if blocker is None else f"{blocker} is a file, not a folder{_named_by(blocker)}"


def write_error_line(err: OSError) -> str:
    """`cannot write /runs/x/run.json: No space left on device` — what a user can act on, in one line."""
    if err.errno in PATH_ERRNOS and err.filename:
        blocked = not_a_folder(err.filename)
        if blocked:
            return f"cannot write {err.filename}: {blocked}"
    where = f" {err.filename}" if err.filename else ""
    return f"cannot write{where}: {err.strerror or err}"


def is_write_error(err: BaseException) -> bool:
    """A write the storage refused (full, read-only, no permission) or a file where a folder must be."""
    return isinstance(err, OSError) and err.errno in (*WRITE_ERRNOS, *PATH_ERRNOS)


def cli_errors(main: F) -> F:
    """Decorate a CLI entry point: an LwError exits 2 with `error: <message>` on one line; so does a
    write the storage refuses (disk full, read-only, a file where a folder must be), exiting 1, with what
    was written before kept."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except LwError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:
            if not is_write_error(err):
                raise
            print(f"error: {write_error_line(err)}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
