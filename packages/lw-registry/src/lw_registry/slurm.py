"""The SLURM backend: submit array-job scripts (lw_registry.slurm_profile renders them) with
`sbatch --parsable`, poll with one `sacct` call, cancel with `scancel`.

A submission writes `<runs root>/.slurm/<stamp>-<plan>/` with `manifest.json` (array index → run dir)
and `job.sbatch`. Each array task runs `python -m lw_registry.job MANIFEST INDEX`, which runs the
command of that run with tee'd, timestamped output in `<run_dir>/job.log`, writes the record straight
to the shared runs root, and on SLURM's warning signal before the time limit (`--signal=B:USR1@S`)
stops the command (SIGTERM: lw CLIs checkpoint), marks the run `preempted` and requeues it; the
next attempt appends the plan's `resume` args.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lw_registry.failures import (
    categorize_text,
    killed_category,
    signal_name,
    tail_lines,
)
from lw_registry.record import (
    RunRecord,
    _now,
    edit_record,
    write_json_atomic,
)
from lw_registry.slurm_profile import SlurmError, render_script

# SLURM job state -> (run status, error category or None to categorize from the log).
SLURM_STATES: dict[str, tuple[str, str | None]] = {
    "PENDING": ("submitted", None), "REQUEUED": ("submitted", None), "REQUEUE_HOLD": ("submitted", None),
    "REQUEUE_FED": ("submitted", None), "CONFIGURING": ("submitted", None), "RESV_DEL_HOLD": ("submitted", None),
    "RUNNING": ("running", None), "COMPLETING": ("running", None), "SUSPENDED": ("running", None),
    "STAGE_OUT": ("running", None), "SIGNALING": ("running", None), "RESIZING": ("running", None),
    "COMPLETED": ("completed", None),
    "FAILED": ("failed", None), "SPECIAL_EXIT": ("failed", None), "BOOT_FAIL": ("failed", "other"),
    "TIMEOUT": ("failed", "timeout"), "DEADLINE": ("failed", "timeout"), "OUT_OF_MEMORY": ("failed", "oom"),
    "NODE_FAIL": ("preempted", "preempted"), "PREEMPTED": ("preempted", "preempted"),
    "CANCELLED": ("cancelled", None), "REVOKED": ("cancelled", None),
}


def map_state(state: str) -> tuple[str, str | None]:
    """`"CANCELLED by 1234"` → `("cancelled", None)`; unknown states count as still running."""
    word = state.strip().split()[0].rstrip("+").upper() if state.strip() else "PENDING"
    return SLURM_STATES.get(word, ("running", None))


# ---------------------------------------------------------------- submit / poll / cancel


def _run(argv: list[str], what: str) -> str:
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} not found on PATH: run on a SLURM login node, or use --backend local")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{what}: {argv[0]} did not answer in 120 s") from None
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise SlurmError(f"{what} failed (exit {out.returncode}): {msg[-1] if msg else 'no message'}")
    return out.stdout


def submit(run_dirs: Iterable[Path], profile: dict[str, Any], *, root: Path, plan: str) -> list[str]:
    """Submit registered runs as array job(s); mark them `submitted` with their job and task ids.

    More runs than `max_array_size` become several arrays; when they are more than `max_parallel` too,
    each array waits for the one before (`--dependency=afterany:JOB`), so that `max_parallel` holds for
    the whole submission, not for each array."""
    run_dirs = [Path(d).resolve() for d in run_dirs]
    size = max(1, int(profile.get("max_array_size") or 1000))
    parallel = int(profile.get("max_parallel") or 0)
    chain = len(run_dirs) > size and 0 < parallel < len(run_dirs)
    job_ids: list[str] = []
    for start in range(0, len(run_dirs), size):
        chunk = run_dirs[start:start + size]
        sub = (root / ".slurm" / f"{time.strftime('%Y%m%d-%H%M%S')}-{plan}-{uuid.uuid4().hex[:4]}").resolve()
        sub.mkdir(parents=True, exist_ok=True)
        manifest = sub / "manifest.json"
        write_json_atomic(manifest, {"plan": plan, "root": str(root.resolve()), "runs": [str(d) for d in chunk],
                                     "requeue": bool(profile.get("requeue", True)),
                                     "max_requeues": int(profile.get("max_requeues", 10)),
                                     "processes": int(profile.get("processes") or 1), "created_at": _now()})
        script = sub / "job.sbatch"
        script.write_text(render_script(profile, plan=plan, manifest=manifest, count=len(chunk),
                                        root=root.resolve(), log_dir=sub))
        try:
            after = [f"--dependency=afterany:{job_ids[-1]}"] if chain and job_ids else []
            out = _run(["sbatch", "--parsable", *after, str(script)], "sbatch")
            job_id = out.strip().splitlines()[-1].split(";")[0].strip() if out.strip() else ""
            if not job_id.isdigit():
                raise SlurmError(f"sbatch --parsable printed {out.strip()!r}, expected a job id")
        except SlurmError as exc:
            _mark_unsubmitted(run_dirs[start:], str(exc))
            raise
        job_ids.append(job_id)
        for index, run_dir in enumerate(chunk):
            with edit_record(run_dir) as record:
                record.status, record.backend, record.slurm_state = "submitted", "slurm", "PENDING"
                record.slurm_job_id, record.slurm_array_task_id = job_id, str(index)
                record.slurm = dict(profile)
                record.artifacts["slurm_log"] = str(sub / f"slurm-{job_id}_{index}.out")
                record.artifacts["sbatch"] = str(script)
    return job_ids


def _mark_unsubmitted(run_dirs: list[Path], error: str) -> None:
    """Runs whose sbatch failed are `failed` (not left `pending`), so a resubmit or --rerun-failed retries them."""
    for run_dir in run_dirs:
        with edit_record(run_dir) as record:
            if record.status == "pending":
                record.status, record.finished_at, record.error = "failed", _now(), error
                record.error_category = categorize_text(error)


def _expand_array_id(job_id: str) -> tuple[str, list[str | None]]:
    """`123_4` → (123, [4]); `123_[0-3,7%2]` → (123, [0,1,2,3,7]); `123` → (123, [None])."""
    if "_" not in job_id:
        return job_id, [None]
    base, _, tasks = job_id.partition("_")
    if not tasks.startswith("["):
        return base, [tasks]
    spec = tasks.strip("[]").split("%")[0]
    ids: list[str | None] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi.isdigit() or not hi):
            ids += [str(i) for i in range(int(lo), int(hi or lo) + 1)]
    return base, ids


def query_states(job_ids: Iterable[str]) -> dict[tuple[str, str | None], tuple[str, str]]:
    """One `sacct` call: (job id, array task id) → (state, exit code) for every task of these jobs."""
    ids = sorted(set(job_ids), key=lambda j: (len(j), j))
    if not ids:
        return {}
    out = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(ids)], "sacct")
    states: dict[tuple[str, str | None], tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or "." in parts[0]:
            continue
        base, tasks = _expand_array_id(parts[0])
        for task in tasks:
            states[(base, task)] = (parts[1], parts[2] if len(parts) > 2 else "")
    return states


def exit_parts(text: str) -> tuple[int | None, int]:
    """sacct's `EXIT:SIGNAL` → (exit code, signal number); `0:9` is a kill by signal 9, not a clean exit."""
    head, _, tail = text.partition(":")
    return (int(head) if head.isdigit() else None), (int(tail) if tail.isdigit() else 0)


def _settles_over_job(record: RunRecord, status: str, category: str | None) -> bool:
    """Whether SLURM's final state replaces the record: always while the job had not settled it, and for a
    time limit over `preempted` (the wrapper saw SLURM's SIGTERM at the limit, which looks like preemption)."""
    if record.status in ("pending", "submitted", "running"):
        return True
    return record.status == "preempted" and status == "failed" and category == "timeout"


def apply_state(run_dir: Path, state: str, exit_text: str = "") -> RunRecord:
    """Update one record from its SLURM state, without undoing what the job itself wrote."""
    status, category = map_state(state)
    code, signum = exit_parts(exit_text)
    with edit_record(run_dir) as record:
        record.slurm_state = state
        if record.status == "completed":
            return record
        if status in ("submitted", "running"):
            if record.status in ("pending", "submitted", "running", "preempted"):
                record.status = status
            return record
        if _settles_over_job(record, status, category):
            log = tail_lines(Path(run_dir) / "job.log") or tail_lines(record.artifacts.get("slurm_log", "")) or ""
            record.status, record.finished_at = status, record.finished_at or _now()
            record.error = f"SLURM state {state}"
            if signum and status != "completed":
                record.error += f" (killed by {signal_name(signum)})"
            record.error_category = category or (
                (killed_category(log) if signum else categorize_text(log)) if status == "failed" else
                "preempted" if status == "preempted" else None)
            if record.exit_code is None:
                record.exit_code = 128 + signum if signum and status != "completed" else code
            record.log_tail = record.log_tail or log or None
            if status == "completed":
                record.exit_code = 0
        elif status == "cancelled" and record.status == "preempted":
            record.status, record.error = "cancelled", f"SLURM state {state}"  # scancel sends SIGTERM too
        elif category in ("timeout", "oom") and record.status == "failed":
            record.error_category = category
    return record


def needs_poll(record: RunRecord) -> bool:
    """Unfinished runs, and settled ones whose last seen SLURM state is still PENDING / RUNNING."""
    if record.backend != "slurm" or not record.slurm_job_id:
        return False
    if record.status in ("pending", "submitted", "running", "preempted"):
        return True
    return bool(record.slurm_state) and map_state(record.slurm_state)[0] in ("submitted", "running")


def poll(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Refresh every unfinished SLURM run from one `sacct` call; return the records that changed."""
    todo = [r for r in records if needs_poll(r)]
    if not todo:
        return []
    states = query_states(r.slurm_job_id for r in todo if r.slurm_job_id)
    changed = []
    for record in todo:
        key = (str(record.slurm_job_id), record.slurm_array_task_id)
        hit = states.get(key) or states.get((str(record.slurm_job_id), None))
        if hit is None:
            continue
        with contextlib.suppress(FileNotFoundError, ValueError):
            new = apply_state(Path(record.run_dir), *hit)
            if (new.status, new.slurm_state) != (record.status, record.slurm_state):
                changed.append(new)
    return changed


def cancel(record: RunRecord) -> None:
    if not record.slurm_job_id:
        raise SlurmError(f"run {record.id} has no SLURM job id")
    target = record.slurm_job_id + (f"_{record.slurm_array_task_id}" if record.slurm_array_task_id else "")
    _run(["scancel", target], "scancel")
