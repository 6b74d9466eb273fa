"""`lw-registry`: the run table on the command line, and the plan executors.

    lw-registry --status                       counts per status, latest runs, recent failures
    lw-registry --list failed                  runs with a status (or `all`)
    lw-registry --show ID                      one run's record, log tail and rerun command
    lw-registry --compare ID ID                two runs side by side (config diff, metric deltas)
    lw-registry --rerun ID | --rerun-failed    run again (same run dir, attempt + 1), within a retry limit
    lw-registry --cancel ID                    scancel a SLURM run / cancel a pending one
    lw-registry --poll                         refresh SLURM runs from one sacct call
    lw-registry report                         markdown tables, mean ± std over seeds
    lw-registry submit PLAN --backend local|slurm

Bad input gets one line `error: ...` and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from lw_registry.plan import PlanError, describe
from lw_registry.record import (
    ACTIVE_STATUSES,
    RETRYABLE_STATUSES,
    STATUSES,
    WRITE_ERRNOS,
    RunRecord,
    edit_record,
)

DEFAULT_LIMIT = 10
EPILOG = """examples:
  lw-registry --status
  lw-registry --list failed --task sst2
  lw-registry --show 20250101-120000-ab12cd
  lw-registry submit ops/slurm/plans/demo.yaml               # local, the default
  lw-registry submit plan.yaml --backend slurm --profile ops/slurm/profiles/example.toml
  lw-registry report --metric accuracy --metric macro_f1 > results.md
runs root: --root, else $LW_RUNS, else ./runs"""


class UsageError(Exception):
    """Bad input: printed as one line `error: ...`, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lw-registry", description="Every lw run, tracked: the run table and the executors.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="runs root (default: $LW_RUNS, else ./runs)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="counts per status, latest runs, recent failures "
                        "(the default)")
    action.add_argument("--list", metavar="STATUS", help=f"runs with this status: {', '.join(STATUSES)}, "
                        "or all (comma-separate several)")
    action.add_argument("--show", metavar="ID", help="one run in full (id, unique id prefix or run dir)")
    action.add_argument("--rerun", metavar="ID", help="run one run again in its run dir")
    action.add_argument("--rerun-failed", action="store_true",
                        help="run every failed / preempted run again, up to its retry limit")
    action.add_argument("--compare", nargs=2, metavar="ID", help="two runs side by side")
    action.add_argument("--cancel", metavar="ID", help="cancel a SLURM run (scancel) or a pending run")
    action.add_argument("--poll", action="store_true", help="refresh unfinished SLURM runs (one sacct call)")
    _filters(parser)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="rows in --status / --list (0: all)")
    parser.add_argument("--sort", default="created_at", help="column to sort --list by (newest first)")
    parser.add_argument("--backend", choices=("local", "slurm"),
                        help="for --rerun/--rerun-failed: where to run (default: where the run ran)")
    parser.add_argument("--profile", help="SLURM profile file (TOML/YAML); default $LW_SLURM_PROFILE")
    parser.add_argument("--max-attempts", type=int, help="retry limit for --rerun-failed (default: the "
                        "run's plan's max_attempts, else 3)")
    parser.add_argument("--force", action="store_true", help="--rerun a run even if it completed")
    parser.add_argument("--no-poll", action="store_true", help="do not ask sacct before --status / --list")
    parser.add_argument("--json", action="store_true", help="--show / --list as JSON")

    sub = parser.add_subparsers(dest="command", metavar="{report,submit}")
    report = sub.add_parser("report", help="markdown tables of results, mean ± std over seeds",
                            description="Markdown tables of completed runs: mean ± std over seeds, grouped by "
                            "task × method (× params).")
    report.add_argument("--root", default=argparse.SUPPRESS, help="runs root")
    report.add_argument("--metric", action="append", help="metric to show (repeat; default: all)")
    report.add_argument("--status", default="completed", help="runs to include (default: completed)")
    report.add_argument("--digits", type=int, default=4, help="decimals (default 4)")
    report.add_argument("--output", "-o", help="write the markdown here instead of stdout")
    report.add_argument("--layout", choices=["metrics", "results"], default="metrics",
                        help="metrics: every metric, mean ± std; results: the README's accuracy / params / "
                        "time table (default: metrics)")
    report.add_argument("--group-by", action="append", metavar="FIELD",
                        help="results layout: group rows by these record fields (repeat): method, host, ..., "
                        "config.X, metrics.X, env.X, hardware (default: method, config.max_train_examples, hardware)")
    report.add_argument("--also-root", action="append", default=[], metavar="ROOT",
                        help="results layout: merge runs from more roots (repeat)")
    report.add_argument("--update", metavar="FILE",
                        help="write the results layout into FILE between <!-- results:start --> and "
                        "<!-- results:end -->")
    _filters(report, suppress=True)

    submit = sub.add_parser("submit", help="expand a plan into runs and run the new ones",
                            description="Expand a plan (YAML/TOML grid of commands) into runs and run those not "
                            "completed yet: locally (default) or as SLURM array jobs.")
    submit.add_argument("plan", help="plan file (.yaml/.yml/.toml)")
    submit.add_argument("--root", default=argparse.SUPPRESS, help="runs root")
    submit.add_argument("--backend", default="local", choices=("local", "slurm"), help="default: local")
    submit.add_argument("--profile", default=argparse.SUPPRESS, help="SLURM profile file (TOML/YAML)")
    submit.add_argument("--concurrency", type=int, help="local: runs at once (default: the plan's, else 1)")
    submit.add_argument("--dry-run", action="store_true", help="show what would run; write nothing")
    submit.add_argument("--retry-cancelled", action="store_true", help="also run cancelled runs again")
    submit.add_argument("--wait", action="store_true", help="slurm: poll until every run has finished")
    submit.add_argument("--poll-seconds", type=float, default=60.0, help="slurm --wait: seconds between polls")
    return parser


def _filters(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--task", action="append", default=default, help="only these tasks (repeat)")
    parser.add_argument("--method", action="append", default=default, help="only these methods (repeat)")
    parser.add_argument("--plan", action="append", default=default, help="only runs of these plans (repeat)")


# ---------------------------------------------------------------- helpers


def fmt_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)).replace("\n", " ") for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _short(text: str | None, n: int = 60) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _metrics_text(metrics: dict[str, Any], n: int = 3) -> str:
    parts = []
    for key, value in list(metrics.items())[:n]:
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    more = len(metrics) - n
    return " ".join(parts) + (f" (+{more})" if more > 0 else "")


def _root(args: argparse.Namespace) -> Path:
    from lw_registry.table import runs_root

    return runs_root(args.root)


def _load(args: argparse.Namespace, *, poll: bool = False) -> Any:
    from lw_registry.table import load_table

    table = load_table(_root(args))
    if poll and not getattr(args, "no_poll", False):
        reaped = _reap_stale_local(table.records)
        if _poll_slurm(table.records, quiet=True) or reaped:
            table = load_table(_root(args))
    for path, problem in table.problems:
        print(f"warning: skipped unreadable record {path}: {_short(problem, 200)}", file=sys.stderr)
    return table


def _poll_slurm(records: list[RunRecord], quiet: bool) -> int:
    from lw_registry.slurm import SlurmError, poll

    pending = [r for r in records if r.backend == "slurm" and r.status in (*ACTIVE_STATUSES, "pending", "preempted")]
    if not pending:
        return 0
    if shutil.which("sacct") is None:
        if not quiet:
            raise UsageError("sacct not found on PATH: run this on the cluster's login node")
        print(f"note: {len(pending)} SLURM run(s) not refreshed (no sacct on PATH)", file=sys.stderr)
        return 0
    try:
        return len(poll(records))
    except SlurmError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return 0


def _executor_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _reap_stale_local(records: list[RunRecord]) -> int:
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


def resolve_run(table: Any, ref: str) -> RunRecord:
    """A run by id, unique id prefix, run dir (or its run.json), or exact name."""
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


def _parse_statuses(text: str) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    if wanted == ["all"]:
        return list(STATUSES)
    bad = [s for s in wanted if s not in STATUSES]
    if bad or not wanted:
        raise UsageError(f"unknown status {', '.join(bad) or repr(text)}; known: {', '.join(STATUSES)}, all")
    return wanted


def _filtered(table: Any, args: argparse.Namespace, statuses: Sequence[str] | None = None) -> list[RunRecord]:
    tasks, methods, plans = (getattr(args, k, None) for k in ("task", "method", "plan"))
    return [
        r for r in table.records
        if (statuses is None or r.status in statuses) and (not tasks or r.task in tasks)
        and (not methods or r.method in methods) and (not plans or r.plan in plans)
    ]


def _run_rows(records: Sequence[RunRecord]) -> list[list[Any]]:
    return [[r.id, r.status, r.task, r.method, r.seed, r.attempt, (r.updated_at or r.created_at or "")[:19],
             _metrics_text(r.metrics) if r.status == "completed" else
             (f"[{r.error_category}] {_short(r.error, 50)}" if r.error_category else "")]
            for r in records]


RUN_HEADERS = ("id", "status", "task", "method", "seed", "attempt", "updated", "metrics / error")


# ---------------------------------------------------------------- commands


def cmd_status(args: argparse.Namespace) -> int:
    from lw_registry.table import filter_runs, status_counts

    table = _load(args, poll=True)
    counts = status_counts(filter_runs(table.frame, task=args.task, method=args.method, plan=args.plan))
    records = _filtered(table, args)
    root = table.root.resolve()
    print(f"runs root: {root}  ({len(table.records)} run{'s' * (len(table.records) != 1)}"
          + (f", {len(table.problems)} unreadable record(s) skipped" if table.problems else "") + ")")
    print()
    print(fmt_table(("status", "runs"), [[s, counts[s]] for s in STATUSES] + [["total", len(records)]]))
    if not table.records:
        print()
        print(f"no runs under {root} yet: `lw-registry submit PLAN` (see ops/slurm/plans/), or run any lw CLI "
              "with --output-dir inside it")
        return 0
    limit = args.limit or len(records)
    print()
    print(f"latest runs ({min(limit, len(records))} of {len(records)})")
    print(fmt_table(RUN_HEADERS, _run_rows(records[:limit])))
    failures = [r for r in records if r.status in ("failed", "preempted")]
    failures.sort(key=lambda r: r.finished_at or r.updated_at or "", reverse=True)
    if failures:
        print()
        print(f"recent failures ({min(5, len(failures))} of {len(failures)}; rerun with --rerun-failed)")
        print(fmt_table(("id", "status", "category", "attempt", "finished", "name", "error"),
                        [[r.id, r.status, r.error_category, r.attempt, (r.finished_at or "")[:19], r.name,
                          _short(r.error or _last_line(r.log_tail), 60)] for r in failures[:5]]))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from lw_registry.table import sort_runs

    statuses = _parse_statuses(args.list)
    table = _load(args, poll=True)
    records = _filtered(table, args, statuses)
    try:
        ids = sort_runs(table.frame, args.sort)["id"].to_list()
    except KeyError:
        raise UsageError(f"unknown sort column {args.sort!r}; known: {', '.join(table.frame.columns)}") from None
    order = {rid: i for i, rid in enumerate(ids)}
    records.sort(key=lambda r: order.get(r.id, 0))
    total = len(records)
    if args.limit and args.limit > 0:
        records = records[: args.limit]
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, default=str))
        return 0
    shown = f" (showing {len(records)}; --limit 0 for all)" if len(records) < total else ""
    print(f"{total} run(s) with status {', '.join(statuses)} under {table.root.resolve()}{shown}")
    if records:
        print(fmt_table(RUN_HEADERS, _run_rows(records)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    table = _load(args)
    record = resolve_run(table, args.show)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2, default=str))
        return 0
    data = record.to_dict()
    skip = {"metrics", "artifacts", "config", "log_tail", "argv", "command", "resume", "slurm", "env", "params"}
    print(fmt_table(("field", "value"), [[k, v] for k, v in data.items() if k not in skip and v not in (None, "")]))
    if record.params:
        print(f"\nparams: {json.dumps(record.params, sort_keys=True)}")
    for title, value in (("metrics", record.metrics), ("artifacts", record.artifacts)):
        if value:
            print(f"\n{title}")
            print(fmt_table(("name", "value"), sorted(value.items())))
    command = record.command or record.argv
    if command:
        print(f"\ncommand: {describe(command)}")
    if record.log_tail:
        print("\nlog tail:\n" + "\n".join("  " + line for line in record.log_tail.splitlines()[-20:]))
    return 0


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def cmd_compare(args: argparse.Namespace) -> int:
    table = _load(args)
    a, b = (resolve_run(table, ref) for ref in args.compare)
    fields = ("name", "status", "task", "method", "seed", "plan", "config_hash", "attempt", "exit_code",
              "error_category", "host", "git_sha", "slurm_job_id", "created_at", "finished_at")
    print(fmt_table(("field", a.id, b.id), [[f, getattr(a, f), getattr(b, f)] for f in fields]))
    ca, cb = _flatten({"params": a.params, **a.config}), _flatten({"params": b.params, **b.config})
    diff = [[k, json.dumps(ca.get(k)), json.dumps(cb.get(k))] for k in sorted(set(ca) | set(cb))
            if ca.get(k) != cb.get(k)]
    print(f"\nconfig: {len(diff)} difference(s)")
    if diff:
        print(fmt_table(("key", a.id, b.id), diff))
    names = sorted(set(a.metrics) | set(b.metrics))
    if names:
        rows = []
        for name in names:
            va, vb = a.metrics.get(name), b.metrics.get(name)
            delta = (vb - va) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
            rows.append([name, va, vb, f"{delta:+.4g}" if delta is not None else ""])
        print("\nmetrics")
        print(fmt_table(("metric", a.id, b.id, "b - a"), rows))
    return 0


@contextlib.contextmanager
def _plan_lock(root: Path, name: str) -> Iterator[None]:
    """One `submit` of a plan at a time decides what to run (so two never launch the same run)."""
    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _print_outcome(outcome: Any, done: int, total: int) -> None:
    extra = f" [{outcome.error_category}]" if outcome.status != "completed" and outcome.error_category else ""
    print(f"[{done}/{total}] {outcome.status}{extra} {outcome.name} ({outcome.seconds:.1f}s) "
          f"→ {outcome.run_dir}", flush=True)


def _claim_local(run_dirs: list[Path]) -> None:
    """Mark runs as handed to this process's local executor (so a second submit leaves them alone)."""
    tag = _executor_tag()
    for run_dir in run_dirs:
        with edit_record(run_dir) as record:
            record.status, record.backend, record.executor = "submitted", "local", tag


def _launch_local(run_dirs: list[Path], concurrency: int) -> list[Any]:
    from lw_registry.executor import run_local

    return run_local(run_dirs, concurrency=concurrency, report=_print_outcome)


def _summary(outcomes: list[Any]) -> int:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print("done: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to run"))
    return 0 if all(o.status == "completed" for o in outcomes) else 1


def _wait_slurm(args: argparse.Namespace, run_dirs: list[Path]) -> int:
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
        time.sleep(args.poll_seconds)


def cmd_submit(args: argparse.Namespace) -> int:
    from lw_registry.executor import prepare
    from lw_registry.plan import load_plan
    from lw_registry.slurm import resolve_profile

    plan = load_plan(args.plan)
    root = _root(args)
    profile = resolve_profile(getattr(args, "profile", None), plan.slurm) if args.backend == "slurm" else None
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError(f"--concurrency must be >= 1, got {args.concurrency}")
    root.mkdir(parents=True, exist_ok=True)
    with _plan_lock(root, plan.name):
        table = _load(args, poll=True)  # SLURM states first: a requeued run is active, not to be resubmitted
        prepared = prepare(plan, table, args.backend, retry_cancelled=args.retry_cancelled, dry_run=args.dry_run)
        notes = [f"{len(prepared.completed)} already completed", f"{len(prepared.active)} active",
                 f"{len(prepared.exhausted)} over the retry limit ({plan.max_attempts})"]
        if prepared.cancelled:
            notes.append(f"{len(prepared.cancelled)} cancelled (--retry-cancelled to run them)")
        print(f"plan {plan.name}: {len(plan.runs)} run(s) — {len(prepared.planned)} to run, " + ", ".join(notes),
              flush=True)
        if args.dry_run:
            for run_dir, planned in prepared.planned:
                print(f"  would run {planned.name}: {describe(planned.argv(run_dir))}")
            return 0
        if not prepared.to_run:
            return 0
        if args.backend == "slurm":
            from lw_registry.slurm import submit

            assert profile is not None
            job_ids = submit(prepared.to_run, profile, root=root, plan=plan.name)
            print(f"submitted {len(prepared.to_run)} run(s) as SLURM array job(s) {', '.join(job_ids)}; "
                  "follow with `lw-registry --status`", flush=True)
        else:
            _claim_local(prepared.to_run)
    if args.backend == "slurm":
        return _wait_slurm(args, prepared.to_run) if args.wait else 0
    return _summary(_launch_local(prepared.to_run, args.concurrency or plan.concurrency))


def _rerun(records: list[RunRecord], args: argparse.Namespace) -> int:
    from lw_registry.slurm import resolve_profile, submit

    local, slurm = [], {}
    for record in records:
        with edit_record(record.run_dir) as rec:
            if not rec.command:
                if not rec.argv:
                    raise UsageError(f"run {rec.id} has no command to run again")
                rec.command = list(rec.argv)
            rec.status, rec.slurm_job_id, rec.slurm_array_task_id, rec.slurm_state = "pending", None, None, None
            backend = args.backend or rec.backend or "local"
            rec.backend = backend
        if backend == "slurm":
            slurm.setdefault((record.plan or "rerun", json.dumps(record.slurm, sort_keys=True)), []).append(record)
        else:
            local.append(Path(record.run_dir))
    rc = 0
    for (plan, saved), group in slurm.items():
        profile = resolve_profile(args.profile) if args.profile else resolve_profile(None, json.loads(saved))
        root = _root(args)
        job_ids = submit([Path(r.run_dir) for r in group], profile, root=root, plan=plan)
        print(f"resubmitted {len(group)} run(s) as SLURM job(s) {', '.join(job_ids)}")
    if local:
        _claim_local(local)
        rc = _summary(_launch_local(local, concurrency=1))
    return rc


def cmd_rerun(args: argparse.Namespace) -> int:
    table = _load(args, poll=True)
    record = resolve_run(table, args.rerun)
    if record.status in ACTIVE_STATUSES:
        raise UsageError(f"run {record.id} is {record.status}; cancel it first (lw-registry --cancel {record.id})")
    if record.status == "completed" and not args.force:
        raise UsageError(f"run {record.id} already completed; pass --force to run it again")
    print(f"rerunning {record.id} ({record.name}), attempt {record.attempt + 1}", flush=True)
    return _rerun([record], args)


def cmd_rerun_failed(args: argparse.Namespace) -> int:
    if args.max_attempts is not None and args.max_attempts < 1:
        raise UsageError(f"--max-attempts must be >= 1, got {args.max_attempts}")
    table = _load(args, poll=True)
    candidates = _filtered(table, args, RETRYABLE_STATUSES)
    todo, over = [], []
    for record in candidates:
        limit = args.max_attempts or record.max_attempts or 3
        (todo if record.attempt < limit else over).append(record)
    for record in over:
        print(f"skipped {record.id} ({record.name}): {record.attempt} attempts reached the retry limit "
              f"(--max-attempts to raise it)")
    print(f"{len(todo)} failed/preempted run(s) to run again", flush=True)
    return _rerun(todo, args) if todo else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from lw_registry.slurm import cancel

    table = _load(args)
    record = resolve_run(table, args.cancel)
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
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    table = _load(args)
    changed = _poll_slurm(table.records, quiet=False)
    print(f"{changed} SLURM run(s) changed")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lw_registry.report import markdown_report

    if args.layout == "results" or args.update:
        return _results_report(args)
    statuses = _parse_statuses(args.status)
    table = _load(args)
    text = markdown_report(table, statuses=statuses, metrics=args.metric, digits=args.digits,
                           tasks=getattr(args, "task", None), methods=getattr(args, "method", None),
                           plans=getattr(args, "plan", None))
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def _results_report(args: argparse.Namespace) -> int:
    from lw_registry.results import results_report

    roots = [_root(args), *map(Path, args.also_root)]
    try:
        print(results_report(roots, getattr(args, "task", None), args.group_by, update=args.update, output=args.output))
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    for key in ("task", "method", "plan", "root"):
        if not hasattr(args, key):
            setattr(args, key, None)
    try:
        if args.command == "submit":
            return cmd_submit(args)
        if args.command == "report":
            return cmd_report(args)
        for flag, fn in (("list", cmd_list), ("show", cmd_show), ("rerun", cmd_rerun), ("compare", cmd_compare),
                         ("cancel", cmd_cancel)):
            if getattr(args, flag):
                return fn(args)
        if args.rerun_failed:
            return cmd_rerun_failed(args)
        if args.poll:
            return cmd_poll(args)
        return cmd_status(args)
    except (UsageError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # SlurmError and friends: one line, not a traceback
        from lw_registry.slurm import SlurmError

        if isinstance(exc, SlurmError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # full disk, read-only runs root
            where = f" {exc.filename}" if exc.filename else ""
            print(f"error: cannot write{where}: {exc.strerror or exc} (runs root {_root(args)})", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
