"""Why a run failed, as one of the record's error categories: from the exception a CLI caught, or from
the last lines of the log of a command that died without settling its record (killed by a signal, out
of memory, preempted, a cluster that did not answer)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

# killed: a signal ended the command, or the job wrapper reading its output died (a broken pipe);
# cluster: SLURM could not be reached or did not answer (not the run's own fault).
ERROR_CATEGORIES = ("oom", "nan", "import", "timeout", "preempted", "missing-file", "killed", "cluster",
                    "bad-config", "other")


def categorize_error(exc: BaseException) -> str:
    """Map an exception to one of ERROR_CATEGORIES by its type and message (no torch import needed)."""
    name, text = type(exc).__name__, str(exc).lower()
    if "OutOfMemory" in name or "out of memory" in text:
        return "oom"
    if "nan" in text.split() or "non-finite" in text or "not finite" in text:
        return "nan"
    if isinstance(exc, ImportError):
        return "import"
    if isinstance(exc, BrokenPipeError):  # whatever read our output (the job wrapper, a pipe) went away
        return "killed"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, FileNotFoundError) or "not found" in text or "no such file" in text:
        return "missing-file"
    if name == "LwError" or isinstance(exc, (ValueError, TypeError, KeyError)):
        return "bad-config"
    return "other"


# Checked in order against a log's last lines: the first hit wins.
_TEXT_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("preempted", ("due to preemption", "preempted")),
    ("cluster", ("unable to contact slurm controller", "slurm_load_jobs error", "socket timed out on send/recv",
                 "zero bytes were transmitted or received", "did not answer in", "run on a slurm login node")),
    ("timeout", ("due to time limit", "timeouterror", "timed out", "time limit")),
    ("oom", ("out of memory", "outofmemoryerror", "memoryerror", "oom-kill", "oom_kill", "oom killer")),
    ("nan", (" nan ", "loss is nan", "non-finite", "not finite", "nan loss")),
    ("import", ("modulenotfounderror", "importerror", "no module named")),
    ("missing-file", ("filenotfounderror", "no such file or directory", "file not found")),
    ("killed", ("brokenpipeerror", "broken pipe")),
    ("bad-config", ("lwerror", "valueerror", "keyerror", "typeerror", "error: ", "usage: ")),
)


def categorize_text(text: str | None) -> str:
    """Map a log's last lines to one of ERROR_CATEGORIES (for commands that died without a record)."""
    low = f" {(text or '').lower()} "
    for category, needles in _TEXT_CATEGORIES:
        if any(n in low for n in needles):
            return category
    return "other"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def killed_category(log: str | None) -> str:
    """The error category of a run a signal ended: what its log names (oom, timeout, preemption), else
    `killed` (never `bad-config` from an unrelated `error:` line)."""
    category = categorize_text(log)
    return category if category in ("oom", "timeout", "preempted", "cluster") else "killed"


def tail_lines(path: str | Path, lines: int = 30, max_bytes: int = 64_000) -> str | None:
    """The last `lines` lines of a (possibly large) text file, or None if it does not exist."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return "\n".join(data.splitlines()[-lines:])
