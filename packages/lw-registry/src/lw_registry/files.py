"""File helpers every package shares: reading a JSON / TOML / YAML mapping with one-line errors,
and an exclusive lock on a file (`flock`), held for a `with` block."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUFFIXES = (".json", ".toml", ".yaml", ".yml")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_mapping(path: str | Path, *, what: str = "file", error: type[Exception] = ValueError) -> dict[str, Any]:
    """The mapping a .json, .toml, .yaml or .yml file holds; `error(one line)` when the file is
    missing, unparsable or not a mapping (`what` names the file in the message)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise error(f"{what} {path} must end in {', '.join(SUFFIXES)}")
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise error(f"{what} {path} is not valid: {_first_line(err)}") from None
    if data is None and path.suffix.lower() in (".yaml", ".yml"):
        data = {}
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping of names to values, not {type(data).__name__}")
    return data


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created, with its folder, if missing) for the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def runs_root(root: str | Path | None = None) -> Path:
    """The runs root: `root`, else `$LW_RUNS` (when set and not empty), else `./runs`."""
    return Path(root if root is not None else os.environ.get("LW_RUNS") or "runs")


def missing_folders(run_dir: Path) -> list[Path]:
    """`run_dir` and the folders above it that do not exist yet, deepest first."""
    missing = []
    for folder in (run_dir, *run_dir.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def remove_created(folders: list[Path]) -> None:
    """Undo a failed start: remove the run dir it created (`folders[0]`, with what it wrote), then the
    folders above it that it created and that are still empty (another run may have started in one)."""
    if not folders:
        return
    shutil.rmtree(folders[0], ignore_errors=True)
    for folder in folders[1:]:
        try:
            folder.rmdir()
        except OSError:
            return
