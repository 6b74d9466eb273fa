"""Cluster orchestration behind `lw-registry`: the CLI parses, these functions do the work.

Loading the run table (refreshing SLURM runs first, failing local runs whose executor died), finding a
run by id, submitting a plan under its plan lock (local or SLURM, optionally waiting), running runs
again (grouped by SLURM profile) within their retry limit, cancelling, and the results report glue.
Progress goes to stdout, warnings to stderr, bad input raises `UsageError` (one line).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lw_registry.files import locked, runs_root
from lw_registry.plan import describe
from lw_registry.record import ACTIVE_STATUSES, RETRYABLE_STATUSES, STATUSES, RunRecord, edit_record

if TYPE_CHECKING:
    from lw_registry.executor import Outcome
    from lw_registry.table import Table


class UsageError(Exception):
    """Bad input: printed as one line `error: ...`, exit code 2."""


def short(text: str | None, n: int = 60) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------- the run table


def load_runs(root: str | Path | None, *, poll: bool = False) -> Table:
    """The run table under `root`; with `poll`, local runs whose executor died are failed and unfinished
    SLURM runs refreshed first. Unreadable records are warned about on stderr."""
    from lw_registry.table import load_table

    table = load_table(runs_root(root))
    if poll:
        reaped = reap_stale_local(table.records)
        if poll_slurm(table.records, quiet=True) or reaped:
            table = load_table(runs_root(root))
    for path, problem in table.problems:
        print(f"warning: skipped unreadable record {path}: {short(problem, 200)}", file=sys.stderr)
    return table


def poll_slurm(records: list[RunRecord], quiet: bool) -> int:
    """Refresh unfinished SLURM runs, and settled ones whose last seen SLURM state is still active
    (one sacct call); the number that changed."""
    from lw_registry.slurm import SlurmError, needs_poll, poll

    pending = [r for r in records if needs_poll(r)]
    if not pending:
        return 0
    if shutil.which("sacct") is None:
        if not quiet:
            raise UsageError("sacct not found on PATH: run this on the cluster's login node")
        unfinished = [r for r in pending if not r.finished]  # a settled run's stale slurm_state is no news
        if unfinished:
            print(f"note: {len(unfinished)} SLURM run(s) not refreshed (no sacct on PATH)", file=sys.stderr)
        return 0
    try:
        return len(poll(records))
    except SlurmError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return 0


def executor_tag() -> str:
    """`host:pid` of this process: marks the runs its local executor owns."""
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_stale_local(records: list[RunRecord]) -> int:
    """Local runs whose executor process (on this host) is gone are marked failed, not left 'running'."""
    host, n = socket.gethostname(), 0
    for record in records:
        tag = record.executor if record.backend in ("local", None) else None  # None: a command run by hand
        if record.status not in ACTIVE_STATUSES or not tag:
            continue
        tag_host, _, pid = tag.rpartition(":")
        if tag_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(Exception), edit_record(record.run_dir) as rec:
            if rec.status in ACTIVE_STATUSES:
                rec.status, rec.error_category = "failed", "other"
                rec.error = f"the {'local executor' if rec.backend else 'process'} ({tag}) exited before the run finished"
                n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_run(table: Table, ref: str) -> RunRecord:
    """A run by id, unique id prefix, run dir (or its run.json), or exact name."""
    if not ref.strip():
        raise UsageError(f"empty run id {ref!r}: give a run id, a unique id prefix, a run dir or a run name")
    by_id = table.by_id()
    if ref in by_id:
        return by_id[ref]
    path = Path(ref)
    if path.exists():
        target = (path.parent if path.name == "run.json" else path).resolve()
        for record in table.records:
            if Path(record.run_dir).resolve() == target:
                return record
    matches = [r for r in table.records if r.id.startswith(ref)] or [r for r in table.records if r.name == ref]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run id {ref!r} is ambiguous: {', '.join(r.id for r in matches[:5])}")
    known = ", ".join(r.id for r in table.records[:5]) or "none"
    more = f" (+{len(table.records) - 5} more; see lw-registry --list all)" if len(table.records) > 5 else ""
    raise UsageError(f"unknown run id {ref!r} under {table.root}; known: {known}{more}")


def parse_statuses(text: str) -> list[str]:
    """`failed,preempted` or `all` → statuses; an unknown one is a UsageError."""
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    if wanted == ["all"]:
        return list(STATUSES)
    bad = [s for s in wanted if s not in STATUSES]
    if bad or not wanted:
        raise UsageError(f"unknown status {', '.join(bad) or repr(text)}; known: {', '.join(STATUSES)}, all")
    return wanted


def select_runs(table: Table, *, tasks: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                plans: Sequence[str] | None = None, statuses: Sequence[str] | None = None) -> list[RunRecord]:
    """The table's records with these statuses, tasks, methods and plans (None: any)."""
    return [
        r for r in table.records
        if (statuses is None or r.status in statuses) and (not tasks or r.task in tasks)
        and (not methods or r.method in methods) and (not plans or r.plan in plans)
    ]


# ---------------------------------------------------------------- running


NO_PLAN_LOCK = "runs-without-plan"  # the lock reruns of runs started by hand hold


@contextlib.contextmanager
def plan_lock(root: Path, name: str) -> Iterator[None]:
    """One `submit` of a plan at a time decides what to run (so two never launch the same run)."""
    with locked(root / ".locks" / f"{name}.lock"):
        yield


def print_outcome(outcome: Outcome, done: int, total: int) -> None:
    extra = f" [{outcome.error_category}]" if outcome.status != "completed" and outcome.error_category else ""
    print(f"[{done}/{total}] {outcome.status}{extra} {outcome.name} ({outcome.seconds:.1f}s) "
          f"→ {outcome.run_dir}", flush=True)


def claim_local(run_dirs: list[Path]) -> None:
    """Mark runs as handed to this process's local executor (so a second submit leaves them alone)."""
    tag = executor_tag()
    for run_dir in run_dirs:
        with edit_record(run_dir) as record:
            record.status, record.backend, record.executor = "submitted", "local", tag


def run_claimed(run_dirs: list[Path], concurrency: int) -> int:
    """Run claimed runs here, printing each outcome and a summary; 0 when all completed."""
    from lw_registry.executor import run_local

    outcomes = run_local(run_dirs, concurrency=concurrency, report=print_outcome)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print("done: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to run"))
    return 0 if all(o.status == "completed" for o in outcomes) else 1


def wait_slurm(run_dirs: list[Path], poll_seconds: float) -> int:
    """Poll sacct until none of these runs is active; 0 when all completed."""
    from lw_registry.record import read_record
    from lw_registry.slurm import poll

    wanted = {str(Path(d).resolve()) for d in run_dirs}
    while True:
        records = [read_record(d) for d in wanted]
        poll(records)
        records = [read_record(d) for d in wanted]
        active = [r for r in records if r.status in (*ACTIVE_STATUSES, "pending")]
        counts: dict[str, int] = {}
        for r in records:
            counts[r.status] = counts.get(r.status, 0) + 1
        print(time.strftime("%H:%M:%S ") + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), flush=True)
        if not active:
            return 0 if all(r.status == "completed" for r in records) else 1
        time.sleep(poll_seconds)


def submit_plan(plan_path: str | Path, *, root: str | Path | None = None, backend: str = "local",
                profile: str | None = None, concurrency: int | None = None, dry_run: bool = False,
                retry_cancelled: bool = False, wait: bool = False, poll_seconds: float = 60.0,
                poll: bool = True) -> int:
    """Expand a plan and run the runs not completed yet (locally, or as SLURM array jobs); the exit code."""
    from lw_registry.plan import load_plan
    from lw_registry.prepare import prepare
    from lw_registry.slurm_profile import resolve_profile

    plan = load_plan(plan_path)
    root = runs_root(root)
    slurm_profile = resolve_profile(profile, plan.slurm) if backend == "slurm" else None
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"--concurrency must be >= 1, got {concurrency}")
    root.mkdir(parents=True, exist_ok=True)
    with plan_lock(root, plan.name):
        table = load_runs(root, poll=poll)  # SLURM states first: a requeued run is active, not to be resubmitted
        prepared = prepare(plan, table, backend, retry_cancelled=retry_cancelled, dry_run=dry_run)
        notes = [f"{len(prepared.completed)} already completed", f"{len(prepared.active)} active",
                 f"{len(prepared.exhausted)} over the retry limit ({plan.max_attempts})"]
        if prepared.cancelled:
            notes.append(f"{len(prepared.cancelled)} cancelled (--retry-cancelled to run them)")
        print(f"plan {plan.name}: {len(plan.runs)} run(s) — {len(prepared.planned)} to run, " + ", ".join(notes),
              flush=True)
        if dry_run:
            for run_dir, planned in prepared.planned:
                print(f"  would run {planned.name}: {describe(planned.argv(run_dir))}")
            return 0
        if not prepared.to_run:
            return 0
        if backend == "slurm":
            from lw_registry.slurm import submit

            assert slurm_profile is not None
            job_ids = submit(prepared.to_run, slurm_profile, root=root, plan=plan.name)
            print(f"submitted {len(prepared.to_run)} run(s) as SLURM array job(s) {', '.join(job_ids)}; "
                  "follow with `lw-registry --status`", flush=True)
        else:
            claim_local(prepared.to_run)
    if backend == "slurm":
        return wait_slurm(prepared.to_run, poll_seconds) if wait else 0
    return run_claimed(prepared.to_run, concurrency or plan.concurrency)


def submit(path: str | Path, **options) -> int:
    """`submit`: a plan, or each plan of a suite in turn (ops/plans/suite.toml; the next plan runs even
    when one had failures); the worst exit code. Every plan is read and checked before anything runs."""
    from lw_registry.suite import plan_paths

    paths = plan_paths(path)
    rc = 0
    for plan_path in paths:
        if len(paths) > 1:
            print(f"== {plan_path}", flush=True)
        rc = max(rc, submit_plan(plan_path, **options))
    return rc


def _claim_rerun(record: RunRecord, backend: str | None) -> tuple[str | None, RunRecord]:
    """Mark a run `pending` for its next attempt, under its record's lock, only if it is still as `record`
    saw it (status and attempt): of several concurrent reruns exactly one claims it. Returns where it runs
    now (local / slurm), or None when another process changed it first, and the record as it is now."""
    with edit_record(record.run_dir) as rec:
        if (rec.status, rec.attempt) != (record.status, record.attempt):
            return None, rec
        if not rec.command:
            if not rec.argv:
                raise UsageError(f"run {rec.id} has no command to run again")
            rec.command = list(rec.argv)
        rec.status, rec.slurm_job_id, rec.slurm_array_task_id, rec.slurm_state = "pending", None, None, None
        rec.backend = backend or rec.backend or "local"
        return rec.backend, rec


def rerun(records: list[RunRecord], *, root: str | Path | None = None, backend: str | None = None,
          profile: str | None = None, must_claim: bool = False) -> int:
    """Run these runs again in their run dirs (attempt + 1): SLURM ones grouped by plan and saved profile,
    local ones here, one at a time. A run that another process started again since `records` were read
    is skipped with a note (with `must_claim`, a UsageError)."""
    from lw_registry.slurm import submit
    from lw_registry.slurm_profile import resolve_profile

    root = runs_root(root)
    local, slurm = [], {}
    with contextlib.ExitStack() as locks:  # a `submit` of their plans decides after this, not meanwhile
        for plan in sorted({r.plan or NO_PLAN_LOCK for r in records}):
            locks.enter_context(plan_lock(root, plan))
        for record in records:
            where, now = _claim_rerun(record, backend)
            if where is None:
                why = f"run {now.id} is {now.status} now (attempt {now.attempt}): another process took it"
                if must_claim:
                    raise UsageError(why)
                print(f"skipped: {why}", file=sys.stderr)
                continue
            print(f"rerunning {now.id} ({now.name}), attempt {now.attempt + 1}", flush=True)
            if where == "slurm":
                slurm.setdefault((record.plan or "rerun", json.dumps(record.slurm, sort_keys=True)), []).append(record)
            else:
                local.append(Path(record.run_dir))
        for (plan, saved), group in slurm.items():
            resolved = resolve_profile(profile) if profile else resolve_profile(None, json.loads(saved))
            job_ids = submit([Path(r.run_dir) for r in group], resolved, root=root, plan=plan)
            print(f"resubmitted {len(group)} run(s) as SLURM job(s) {', '.join(job_ids)}")
        if local:
            claim_local(local)
    return run_claimed(local, concurrency=1) if local else 0


def rerun_one(ref: str, *, root: str | Path | None = None, backend: str | None = None, profile: str | None = None,
              force: bool = False, poll: bool = True) -> int:
    """`--rerun ID`: one run again, unless it is active (or completed, without `force`)."""
    record = resolve_run(load_runs(root, poll=poll), ref)
    if record.status in ACTIVE_STATUSES:
        raise UsageError(f"run {record.id} is {record.status}; cancel it first (lw-registry --cancel {record.id})")
    if record.status == "completed" and not force:
        raise UsageError(f"run {record.id} already completed; pass --force to run it again")
    return rerun([record], root=root, backend=backend, profile=profile, must_claim=True)


def rerun_failed(*, root: str | Path | None = None, backend: str | None = None, profile: str | None = None,
                 max_attempts: int | None = None, poll: bool = True, **filters: Sequence[str] | None) -> int:
    """`--rerun-failed`: every failed / preempted run (filtered by tasks, methods, plans) within its retry limit."""
    if max_attempts is not None and max_attempts < 1:
        raise UsageError(f"--max-attempts must be >= 1, got {max_attempts}")
    table = load_runs(root, poll=poll)
    todo, over = [], []
    for record in select_runs(table, statuses=RETRYABLE_STATUSES, **filters):
        limit = max_attempts or record.max_attempts or 3
        (todo if record.attempt < limit else over).append(record)
    for record in over:
        print(f"skipped {record.id} ({record.name}): {record.attempt} attempts reached the retry limit "
              f"(--max-attempts to raise it)")
    print(f"{len(todo)} failed/preempted run(s) to run again", flush=True)
    return rerun(todo, root=root, backend=backend, profile=profile) if todo else 0


def cancel_run(ref: str, *, root: str | Path | None = None) -> None:
    """scancel a SLURM run, or mark a pending / preempted one cancelled."""
    from lw_registry.slurm import cancel

    record = resolve_run(load_runs(root), ref)
    if record.status in ("completed", "failed", "cancelled"):
        raise UsageError(f"run {record.id} is already {record.status}")
    if record.backend == "slurm" and record.slurm_job_id:
        cancel(record)
        print(f"scancel sent for {record.id} (job {record.slurm_job_id}_{record.slurm_array_task_id})")
    elif record.status in ("pending", "preempted"):
        with edit_record(record.run_dir) as rec:
            rec.status, rec.error = "cancelled", "cancelled by lw-registry --cancel"
        print(f"cancelled {record.id}")
    else:
        raise UsageError(f"run {record.id} runs locally ({record.host}); stop its process there (Ctrl-C)")


def results_report(roots: Sequence[str | Path], tasks: Sequence[str] | None, group_by: Sequence[str] | None, *,
                   suite: str | None = None, update: str | None = None, output: str | None = None,
                   archive: str | None = None, figures: str | None = None, no_figures: bool = False) -> str:
    """The README's results section (lw_registry.report.publish); unreadable input is a UsageError."""
    from lw_registry.report.publish import results_report as build

    try:
        return build([Path(r) for r in roots], tasks, group_by, suite=suite, update=update, output=output,
                     archive=archive, figures=figures, no_figures=no_figures)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
