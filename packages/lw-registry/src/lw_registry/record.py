"""One `run.json` per run directory, written atomically and updated under a file lock."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RECORD_NAME = "run.json"
STATUSES = ("pending", "submitted", "running", "completed", "failed", "preempted", "cancelled")
ERROR_CATEGORIES = ("oom", "nan", "import", "timeout", "preempted", "missing-file", "bad-config", "other")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def git_sha(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclasses.dataclass
class RunRecord:
    id: str
    name: str
    run_dir: str
    argv: list[str] = dataclasses.field(default_factory=list)
    config_hash: str | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    task: str | None = None
    method: str | None = None
    seed: int | None = None
    status: str = "pending"
    created_at: str = dataclasses.field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    host: str | None = None
    git_sha: str | None = None
    slurm_job_id: str | None = None
    slurm_array_task_id: str | None = None
    attempt: int = 0
    exit_code: int | None = None
    error_category: str | None = None
    error: str | None = None
    log_tail: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".run.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_record(run_dir: str | Path) -> RunRecord:
    path = Path(run_dir) / RECORD_NAME
    return RunRecord.from_dict(json.loads(path.read_text()))


def write_record(record: RunRecord) -> RunRecord:
    with _locked(Path(record.run_dir)):
        write_json_atomic(Path(record.run_dir) / RECORD_NAME, record.to_dict())
    return record


def update_record(run_dir: str | Path, **fields: Any) -> RunRecord:
    """Read-modify-write `run.json` under the run's lock; `metrics`/`artifacts` are merged, not replaced."""
    run_dir = Path(run_dir)
    with _locked(run_dir):
        record = read_record(run_dir)
        for key, value in fields.items():
            if key in ("metrics", "artifacts"):
                getattr(record, key).update(value)
            else:
                setattr(record, key, value)
        write_json_atomic(run_dir / RECORD_NAME, record.to_dict())
    return record


def start_run(
    run_dir: str | Path,
    *,
    name: str,
    argv: list[str],
    config: dict[str, Any],
    config_hash: str | None = None,
    task: str | None = None,
    method: str | None = None,
    seed: int | None = None,
) -> RunRecord:
    """Mark a run as running (creating its record, or counting one more attempt of an existing one)."""
    run_dir = Path(run_dir)
    with _locked(run_dir):
        if (run_dir / RECORD_NAME).exists():
            record = read_record(run_dir)
        else:
            record = RunRecord(id=new_run_id(), name=name, run_dir=str(run_dir.resolve()))
        record.argv, record.config, record.config_hash = list(argv), config, config_hash
        record.task, record.method, record.seed = task, method, seed
        record.status, record.started_at, record.finished_at = "running", _now(), None
        record.attempt += 1
        record.host, record.git_sha = socket.gethostname(), git_sha()
        record.slurm_job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or record.slurm_job_id
        record.slurm_array_task_id = os.environ.get("SLURM_ARRAY_TASK_ID") or record.slurm_array_task_id
        record.exit_code = record.error_category = record.error = record.log_tail = None
        write_json_atomic(run_dir / RECORD_NAME, record.to_dict())
    return record


def finish_run(
    run_dir: str | Path, *, metrics: dict[str, Any] | None = None, artifacts: dict[str, str] | None = None
) -> RunRecord:
    return update_record(
        run_dir, status="completed", finished_at=_now(), exit_code=0, metrics=metrics or {}, artifacts=artifacts or {}
    )


def fail_run(
    run_dir: str | Path,
    *,
    error: str,
    category: str = "other",
    log_tail: str | None = None,
    status: str = "failed",
    exit_code: int = 1,
) -> RunRecord:
    if category not in ERROR_CATEGORIES:
        category = "other"
    return update_record(
        run_dir,
        status=status,
        finished_at=_now(),
        exit_code=exit_code,
        error=error,
        error_category=category,
        log_tail=log_tail,
    )


def categorize_error(exc: BaseException) -> str:
    """Map an exception to one of ERROR_CATEGORIES by its type and message (no torch import needed)."""
    name, text = type(exc).__name__, str(exc).lower()
    if "OutOfMemory" in name or "out of memory" in text:
        return "oom"
    if "nan" in text.split() or "non-finite" in text or "not finite" in text:
        return "nan"
    if isinstance(exc, ImportError):
        return "import"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, FileNotFoundError) or "not found" in text or "no such file" in text:
        return "missing-file"
    if name == "LwError" or isinstance(exc, (ValueError, TypeError, KeyError)):
        return "bad-config"
    return "other"
