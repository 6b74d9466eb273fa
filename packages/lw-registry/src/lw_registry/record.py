"""One `run.json` per run directory, written atomically and updated under a file lock."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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

from lw_registry.failures import ERROR_CATEGORIES
from lw_registry.files import locked

RECORD_NAME = "run.json"
STATUSES = ("pending", "submitted", "running", "completed", "failed", "preempted", "cancelled")
ACTIVE_STATUSES = ("submitted", "running")
FINAL_STATUSES = ("completed", "failed", "preempted", "cancelled")
RETRYABLE_STATUSES = ("failed", "preempted")
# Storage that refuses writes: full disk, quota, read-only mount, no permission (one-line errors in the CLIs).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
# Set by the executors for the command they launch: the attempt they counted and the run dir it is for,
# so `start_run` inside that command does not count the same attempt twice.
ENV_ATTEMPT = "LW_ATTEMPT"
ENV_RUN_DIR = "LW_RUN_DIR"


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
    # Set by the executors (`lw-registry submit`); lw CLIs run by hand leave them empty.
    plan: str | None = None
    plan_hash: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    command: list[str] = dataclasses.field(default_factory=list)
    resume: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    backend: str | None = None
    executor: str | None = None  # "host:pid" of the local executor running it
    max_attempts: int | None = None
    timeout_s: float | None = None
    slurm_state: str | None = None
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Build a record from parsed JSON; raise `ValueError` naming the problem if it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("id", "name", "run_dir") if not isinstance(data.get(k), str)]
        if missing:
            raise ValueError(f"missing or non-string field(s): {', '.join(missing)}")
        if data.get("status", "pending") not in STATUSES:
            raise ValueError(f"unknown status {data.get('status')!r}")
        for key in ("metrics", "artifacts", "config", "params", "slurm", "env"):
            if key in data and not isinstance(data[key], dict):
                raise ValueError(f"field {key!r} must be an object")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _file_mode() -> int:
    """0o666 minus the umask: what `open()` would give (mkstemp's files are 0o600, wrong on a shared root)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None and (
            err.filename is None or Path(str(err.filename)).name.startswith(f".{path.name}.")  # the temp file
        ):
            raise OSError(err.errno, err.strerror, str(path)) from err  # name the file it could not write
        raise


def _locked(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """The run dir's lock (created with the dir): read-modify-write updates hold it."""
    return locked(run_dir / ".run.lock")


def read_record(run_dir: str | Path) -> RunRecord:
    path = Path(run_dir) / RECORD_NAME
    return RunRecord.from_dict(json.loads(path.read_text()))


def write_record(record: RunRecord) -> RunRecord:
    record.updated_at = _now()
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
        record.updated_at = _now()
        write_json_atomic(run_dir / RECORD_NAME, record.to_dict())
    return record


@contextlib.contextmanager
def edit_record(run_dir: str | Path) -> Iterator[RunRecord]:
    """Read-modify-write `run.json` under the run's lock: `with edit_record(d) as rec: rec.status = ...`.

    A record the block left unchanged is not rewritten (its `updated_at` stays).
    """
    run_dir = Path(run_dir)
    with _locked(run_dir):
        record = read_record(run_dir)
        before = record.to_dict()
        yield record
        if record.to_dict() != before:
            record.updated_at = _now()
            write_json_atomic(run_dir / RECORD_NAME, record.to_dict())


def _counted_attempt(run_dir: Path) -> int | None:
    """The attempt number an executor already counted for this run dir (see ENV_ATTEMPT), if any."""
    attempt, target = os.environ.get(ENV_ATTEMPT), os.environ.get(ENV_RUN_DIR)
    if not attempt or not target:
        return None
    try:
        same = Path(target).resolve() == run_dir.resolve()
        return int(attempt) if same else None
    except (OSError, ValueError):
        return None


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
        record.argv, record.config = list(argv), config
        # Keep what the executor already set when the CLI does not know better.
        record.config_hash = config_hash or record.config_hash
        record.task = task if task is not None else record.task
        record.method = method if method is not None else record.method
        record.seed = seed if seed is not None else record.seed
        record.status, record.started_at, record.finished_at = "running", _now(), None
        counted = _counted_attempt(run_dir)
        record.attempt = max(record.attempt, counted) if counted is not None else record.attempt + 1
        record.host, record.git_sha = socket.gethostname(), git_sha()
        if record.backend is None:  # run by hand: its own process is what `--status` checks is alive
            record.executor = f"{record.host}:{os.getpid()}"
        record.slurm_job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or record.slurm_job_id
        record.slurm_array_task_id = os.environ.get("SLURM_ARRAY_TASK_ID") or record.slurm_array_task_id
        record.exit_code = record.error_category = record.error = record.log_tail = None
        record.updated_at = _now()
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
