"""What lw keeps under `$LW_CACHE` (`lw-models cache`): converted model folders (`models/`), sender
states (`states/`: one safetensors file per model, layer and split, hundreds of MB for a large user CSV)
and the receivers' zero-shot test scores (`zero_shot/`). Each is recomputed when missing, so any of them
may be cleared; a file another process is still writing (`*.tmp`) is left alone."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from lw_core.errors import LwError
from lw_core.models import cache_dir

FOLDERS = ("models", "states", "zero_shot")


@dataclass(frozen=True)
class CacheEntry:
    """A file (or, under `models/`, a model folder) in the cache, with its size on disk."""

    path: Path
    bytes: int


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cache_entries(folder: str) -> list[CacheEntry]:
    """The entries of one cache folder, by name (none when it does not exist yet)."""
    root = cache_dir() / folder
    if root.exists() and not root.is_dir():
        raise LwError(f"cache folder {root} is a file, not a folder")
    if not root.is_dir():
        return []
    return [CacheEntry(p, _size(p)) for p in sorted(root.iterdir()) if not p.name.endswith(".tmp")]


def clear_cache(folder: str) -> list[CacheEntry]:
    """Remove the entries of one cache folder; returns what was removed."""
    if folder not in FOLDERS:
        raise LwError(f"no cache folder {folder!r}; known: {', '.join(FOLDERS)}")
    removed = cache_entries(folder)
    for entry in removed:
        if entry.path.is_dir():
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink(missing_ok=True)
    return removed


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def cache_report(files: bool = True) -> str:
    """Lines for `lw-models cache`: where the cache is, each folder's total, and (`files`) each entry."""
    lines = [f"LW_CACHE: {cache_dir()}"]
    for folder in FOLDERS:
        entries = cache_entries(folder)
        total = sum(e.bytes for e in entries)
        lines.append(f"{folder}/: {len(entries)} entries, {human_bytes(total)}")
        if files:
            lines += [f"  {human_bytes(e.bytes):>9}  {e.path.name}" for e in entries]
    return "\n".join(lines)
