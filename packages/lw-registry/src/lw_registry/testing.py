"""Helpers for tests that drive lw-registry against a real SLURM (`.ci/slurm-test.sh`): whether one is
up, the CLI in-process, and polling with a deadline instead of fixed sleeps."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lw_registry import cli

T = TypeVar("T")


def slurm_unavailable() -> str | None:
    """Why the real-SLURM tests cannot run here (None when they can): they need LW_SLURM_TESTS=1, the
    SLURM clients and a node that `sinfo` reports usable."""
    if os.environ.get("LW_SLURM_TESTS") != "1":
        return "real-SLURM tests run only with LW_SLURM_TESTS=1 (.ci/slurm-test.sh starts SLURM and sets it)"
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM client on PATH (.ci/slurm-up.sh installs and starts one, as root)"
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not any(s in out.stdout for s in ("idle", "mix", "alloc")):
        return f"SLURM is not up (sinfo: {(out.stderr or out.stdout).strip()[:200]})"
    return None


def run_cli(root: Path, *args: object) -> tuple[int, str]:
    """`lw-registry --root ROOT ARGS...` in-process: (exit code, stdout + stderr)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = cli.main(["--root", str(root), *map(str, args)])
    return rc, out.getvalue()


def poll_until(root: Path, what: str, check: Callable[[], T], deadline_s: float, every: float = 3.0) -> T:
    """Poll SLURM (one sacct call) and `check()` until it returns something true; raise AssertionError
    with the runs' status if `deadline_s` passes first."""
    end = time.monotonic() + deadline_s
    while True:
        run_cli(root, "--poll")
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not reached within {deadline_s:.0f}s\n{run_cli(root, '--status')[1]}")
        time.sleep(every)
