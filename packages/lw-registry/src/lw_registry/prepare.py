"""Turning planned runs into tracked runs: `prepare` writes a `pending` record for every planned run that
still has to run (a completed run is never run twice, an active one is left alone, a failed one is
retried up to its attempt limit); `register` writes one, with everything needed to run it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lw_registry.files import missing_folders, remove_created
from lw_registry.plan import Plan, PlannedRun
from lw_registry.record import (
    ACTIVE_STATUSES,
    RECORD_NAME,
    RETRYABLE_STATUSES,
    RunRecord,
    edit_record,
    new_run_id,
    write_record,
)

if TYPE_CHECKING:
    from lw_registry.table import Table


@dataclass
class Prepared:
    """What `prepare` decided for a plan: run dirs to launch, and why the others are skipped."""

    to_run: list[Path] = field(default_factory=list)
    planned: list[tuple[Path, PlannedRun]] = field(default_factory=list)
    completed: list[RunRecord] = field(default_factory=list)
    active: list[RunRecord] = field(default_factory=list)
    exhausted: list[RunRecord] = field(default_factory=list)
    cancelled: list[RunRecord] = field(default_factory=list)


def _latest_by_hash(table: Table) -> dict[str, list[RunRecord]]:
    found: dict[str, list[RunRecord]] = {}
    for record in table.records:
        if record.plan_hash:
            found.setdefault(record.plan_hash, []).append(record)
    return found


def prepare(
    plan: Plan, table: Table, backend: str, *, retry_cancelled: bool = False, dry_run: bool = False
) -> Prepared:
    """Write a pending record for each planned run that has to run; skip completed and active ones.

    With `dry_run`, decide the same way but write nothing (`to_run` stays empty, `planned` is filled).
    """
    existing = _latest_by_hash(table)
    out = Prepared()
    for planned in plan.runs:
        records = existing.get(planned.plan_hash, [])
        done = [r for r in records if r.status == "completed"]
        if done:
            out.completed.append(done[0])
            continue
        active = [r for r in records if r.status in ACTIVE_STATUSES]
        if active:
            out.active.append(active[0])
            continue
        # Retry in the same run dir (checkpoints, attempt count), preferring this plan's own dir.
        own = table.root / plan.name / planned.slug
        reuse = next((r for r in records if Path(r.run_dir) == own.resolve()), records[0] if records else None)
        if reuse is not None and reuse.status == "cancelled" and not retry_cancelled:
            out.cancelled.append(reuse)
            continue
        if reuse is not None and reuse.status in RETRYABLE_STATUSES and reuse.attempt >= plan.max_attempts:
            out.exhausted.append(reuse)
            continue
        run_dir = (Path(reuse.run_dir) if reuse is not None else own).resolve()
        out.planned.append((run_dir, planned))
        if not dry_run:
            out.to_run.append(register(planned, run_dir, plan=plan, backend=backend))
    return out


def register(planned: PlannedRun, run_dir: Path, *, plan: Plan, backend: str) -> Path:
    """Create or refresh the run's record as `pending`, with everything needed to run it again."""
    run_dir = run_dir.resolve()
    created = missing_folders(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "name": planned.name, "plan": planned.plan, "plan_hash": planned.plan_hash, "params": planned.params,
        "command": planned.argv(run_dir), "resume": planned.resume_args(run_dir), "backend": backend,
        "max_attempts": plan.max_attempts, "timeout_s": plan.timeout, "task": planned.task,
        "method": planned.method, "seed": planned.seed, "status": "pending", "env": planned.env,
        "slurm_job_id": None, "slurm_array_task_id": None, "slurm_state": None, "executor": None,
    }
    if (run_dir / RECORD_NAME).is_file():
        try:
            with edit_record(run_dir) as record:
                for key, value in fields.items():
                    setattr(record, key, value)
                record.config_hash = record.config_hash or planned.plan_hash
            return run_dir
        except (ValueError, json.JSONDecodeError):
            pass  # a corrupt record is replaced by a fresh one below
    record = RunRecord(id=new_run_id(), name=planned.name, run_dir=str(run_dir), config_hash=planned.plan_hash,
                       config={"argv": planned.argv_template, "params": planned.params, "env": planned.env})
    for key, value in fields.items():
        setattr(record, key, value)
    try:
        write_record(record)
    except OSError:  # a full disk: no lock-only run dir left behind
        remove_created(created)
        raise
    return run_dir
