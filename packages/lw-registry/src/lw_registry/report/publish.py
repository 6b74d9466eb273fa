"""`lw-registry report --layout results / --update FILE`: the results section from run records, written
between the markers of FILE, with its figures and an archive of the records it used.

With `--update README.md` the records go to `results/records/<task>/<method>/<run id>/` beside the
README (each run's run.json and env.json, and an lw-bench run's results.json: small files, no
checkpoints) and the figures to `docs/results/`. The archive is read as one more runs root, so records
from other machines merge by committing them there, and the section can be regenerated from the
repository alone (`section_from`, what the README test does).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from lw_registry.report.records import completed_records
from lw_registry.report.section import Section, build_section, relative_path
from lw_registry.suite import load_suite

START, END = "<!-- results:start -->", "<!-- results:end -->"
ARCHIVE_DIR = Path("results/records")
FIGURES_DIR = Path("docs/results")
ARCHIVED_FILES = ("run.json", "env.json", "results.json")
FIGURE_PATTERNS = ("accuracy-*.png", "bytes-*.png", "latency-scaling.png")


def report_command(suite: Path | None, update: Path | None, base: Path) -> str:
    """The command that regenerates the section, with paths relative to the updated file's folder."""
    parts = ["uv run lw-registry report"]
    if suite is not None:
        parts.append(f"--suite {relative_path(suite, base)}")
    if update is not None:
        parts.append(f"--update {relative_path(update, base)}")
    return " ".join(parts)


def section_from(roots: Sequence[Path], *, suite: Path | None = None, tasks: Sequence[str] | None = None,
                 group_by: Sequence[str] | None = None, base: Path, update: Path | None = None,
                 archive: Path | None = None, figures_dir: Path | None = None) -> Section:
    """The section from the completed records under `roots` (and the suite's plans); ValueError (one
    line) on an unknown task or group field, an unreadable record or suite."""
    loaded = load_suite(suite) if suite is not None else None
    found = completed_records(roots)
    known = set(loaded.tasks if loaded else []) | {r.record.task for r in found if r.record.task}
    unknown = [t for t in tasks or [] if t not in known]
    if unknown:
        raise ValueError(f"unknown task {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known)) or 'none'}")
    return build_section(found, loaded, base=base, tasks=tasks, group_by=group_by,
                         figures_dir=figures_dir or base / FIGURES_DIR, archive=archive,
                         command=report_command(suite, update, base))


def archive_records(section: Section, archive: Path) -> int:
    """Copy the records the section used into `archive/<task>/<method>/<id>/`; the number copied."""
    copied = 0
    for row in section.used:
        if row.source is None:
            continue
        dest = archive / (row.record.task or "_") / (row.record.method or "_") / row.record.id
        if dest.resolve() == row.source.resolve():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        for name in ARCHIVED_FILES:
            if (row.source / name).is_file():
                tmp = dest / f".{name}.tmp"
                shutil.copyfile(row.source / name, tmp)
                tmp.replace(dest / name)
        copied += 1
    return copied


def draw_figures(section: Section, directory: Path) -> list[str]:
    """Draw the section's figures into `directory`, removing the report's figures it no longer links."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [draw(directory / name) for name, draw in section.figures]
    for pattern in FIGURE_PATTERNS:
        for stale in directory.glob(pattern):
            if stale.name not in names:
                stale.unlink()
    return names


def results_report(roots: Sequence[Path], tasks: Sequence[str] | None = None, group_by: Sequence[str] | None = None,
                   *, suite: str | None = None, update: str | None = None, output: str | None = None,
                   archive: str | None = None, figures: str | None = None, no_figures: bool = False) -> str:
    """`lw-registry report --layout results`: the section written between the markers of `update` (with
    its archive and figures beside it unless told otherwise), to `output`, or returned for printing."""
    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:
        raise ValueError(f"runs root {', '.join(missing)} does not exist")
    target = Path(update) if update else None
    if target is not None:
        current_section(target)  # no markers: fail before writing anything
    base = target.parent if target is not None else Path.cwd()
    archive_dir = Path(archive) if archive else (base / ARCHIVE_DIR if target is not None else None)
    figures_dir = Path(figures) if figures else base / FIGURES_DIR
    read = [Path(r) for r in roots]
    if archive_dir is not None and archive_dir.is_dir() and archive_dir.resolve() not in [r.resolve() for r in read]:
        read.append(archive_dir)
    section = section_from(read, suite=Path(suite) if suite else None, tasks=tasks, group_by=group_by, base=base,
                           update=target, archive=archive_dir, figures_dir=figures_dir)
    notes = []
    if archive_dir is not None:
        notes.append(f"archived {archive_records(section, archive_dir)} record(s) in {archive_dir}")
    if not no_figures and (figures or target is not None):
        notes.append(f"wrote {len(draw_figures(section, figures_dir))} figure(s) in {figures_dir}")
    if target is not None:
        update_between_markers(target, section.text)
        return "\n".join([*notes, f"updated {update}"])
    if output:
        Path(output).write_text(section.text)
        return "\n".join([*notes, f"wrote {output}"])
    return section.text.rstrip("\n") + "".join(f"\n{n}" for n in notes)


def current_section(path: Path, start: str = START, end: str = END) -> str:
    """What stands between the markers in `path`; ValueError without them."""
    content = path.read_text()
    if start not in content or end not in content:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    return content.split(start, 1)[1].split(end, 1)[0].strip("\n")


def update_between_markers(path: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace what stands between the markers in `path` (written atomically); ValueError without them."""
    current_section(path, start, end)
    head, rest = path.read_text().split(start, 1)
    tail = rest.split(end, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    tmp.replace(path)
