"""`lw-registry`: the run table on the command line, and the plan executors.

    lw-registry --status                       counts per status, latest runs, recent failures
    lw-registry --list failed                  runs with a status (or `all`)
    lw-registry --show ID                      one run's record, log tail and rerun command
    lw-registry --compare ID ID                two runs side by side (config diff, metric deltas)
    lw-registry --rerun ID | --rerun-failed    run again (same run dir, attempt + 1), within a retry limit
    lw-registry --cancel ID                    scancel a SLURM run / cancel a pending one
    lw-registry --poll                         refresh SLURM runs from one sacct call
    lw-registry report                         markdown tables, mean ± std over seeds
    lw-registry report --suite S --update F    the README's results section, figures and record archive
    lw-registry submit PLAN|SUITE --backend local|slurm

Bad input gets one line `error: ...` and exit code 2. The work is done by lw_registry.orchestrate (and
printed by lw_registry.views): this module only parses and calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from lw_registry import orchestrate, views
from lw_registry.files import runs_root
from lw_registry.orchestrate import UsageError, parse_statuses, resolve_run
from lw_registry.plan import PlanError
from lw_registry.record import STATUSES, WRITE_ERRNOS

if TYPE_CHECKING:
    from lw_registry.table import Table

DEFAULT_LIMIT = 10
EPILOG = """examples:
  lw-registry --status
  lw-registry --list failed --task sst2
  lw-registry --show 20250101-120000-ab12cd
  lw-registry submit ops/slurm/plans/demo.yaml               # local, the default
  lw-registry submit plan.yaml --backend slurm --profile ops/slurm/profiles/example.toml
  lw-registry report --metric accuracy --metric macro_f1 > results.md
  lw-registry submit ops/plans/suite.toml                    # every plan of the suite in turn
  lw-registry report --suite ops/plans/suite.toml --update README.md
runs root: --root, else $LW_RUNS, else ./runs"""


def _count(text: str) -> int:
    """An integer >= 0 (argparse type): `--limit -1` is an error, not "all"."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


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
    parser.add_argument("--limit", type=_count, default=DEFAULT_LIMIT, help="rows in --status / --list (0: all)")
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
    report.add_argument("--digits", type=_count, default=4, help="decimals (default 4)")
    report.add_argument("--output", "-o", help="write the markdown here instead of stdout")
    report.add_argument("--layout", choices=["metrics", "results"], default="metrics",
                        help="metrics: every metric, mean ± std; results: the README's results section "
                        "(tables, findings, figures; implied by --suite / --update) (default: metrics)")
    report.add_argument("--group-by", action="append", metavar="FIELD",
                        help="results layout: group rows by these record fields (repeat): method, host, ..., "
                        "config.X, metrics.X, params.X, env.X, hardware, budget (default: method, budget, hardware)")
    report.add_argument("--also-root", action="append", default=[], metavar="ROOT",
                        help="results layout: merge runs from more roots (repeat)")
    report.add_argument("--suite", metavar="FILE",
                        help="results layout: a suite (ops/plans/suite.toml) or plan file: its tasks in order, "
                        "headline metrics, ablation tables and the runs not completed yet")
    report.add_argument("--update", metavar="FILE",
                        help="write the results section into FILE between <!-- results:start --> and "
                        "<!-- results:end -->; implies --archive DIR/results/records and --figures "
                        "DIR/docs/results, DIR being FILE's folder")
    report.add_argument("--archive", metavar="DIR",
                        help="results layout: copy the records used (run.json, env.json, results.json) to "
                        "DIR/<task>/<method>/<id>/, and read DIR as one more root")
    report.add_argument("--figures", metavar="DIR", help="results layout: write the PNG figures to DIR")
    report.add_argument("--no-figures", action="store_true", help="do not draw the figures (the section "
                        "still links them)")
    _filters(report, suppress=True)

    submit = sub.add_parser("submit", help="expand a plan into runs and run the new ones",
                            description="Expand a plan (YAML/TOML grid of commands) into runs and run those not "
                            "completed yet: locally (default) or as SLURM array jobs.")
    submit.add_argument("plan", help="plan file (.yaml/.yml/.toml), or a suite file listing plans")
    submit.add_argument("--root", default=argparse.SUPPRESS, help="runs root")
    submit.add_argument("--backend", default="local", choices=("local", "slurm"), help="default: local")
    submit.add_argument("--profile", default=argparse.SUPPRESS, help="SLURM profile file (TOML/YAML)")
    submit.add_argument("--concurrency", type=int, help="local: runs at once (default: the plan's, else 1)")
    submit.add_argument("--dry-run", action="store_true", help="show what would run; write nothing")
    submit.add_argument("--retry-cancelled", action="store_true", help="also run cancelled runs again")
    submit.add_argument("--wait", action="store_true", help="slurm: poll until every run has finished")
    submit.add_argument("--poll-seconds", type=_seconds, default=60.0, help="slurm --wait: seconds between polls")
    return parser


def _filters(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--task", action="append", default=default, help="only these tasks (repeat)")
    parser.add_argument("--method", action="append", default=default, help="only these methods (repeat)")
    parser.add_argument("--plan", action="append", default=default, help="only runs of these plans (repeat)")


# ---------------------------------------------------------------- commands: parse, call, print


def _filters_of(args: argparse.Namespace) -> dict[str, list[str] | None]:
    return {"tasks": args.task, "methods": args.method, "plans": args.plan}


def _load(args: argparse.Namespace, *, poll: bool = False) -> Table:
    return orchestrate.load_runs(args.root, poll=poll and not getattr(args, "no_poll", False))


def cmd_status(args: argparse.Namespace) -> int:
    from lw_registry.table import filter_runs, status_counts

    table = _load(args, poll=True)
    counts = status_counts(filter_runs(table.frame, task=args.task, method=args.method, plan=args.plan))
    print(views.status_text(table, orchestrate.select_runs(table, **_filters_of(args)), counts, args.limit))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from lw_registry.table import sort_runs

    statuses = parse_statuses(args.list)
    table = _load(args, poll=True)
    records = orchestrate.select_runs(table, statuses=statuses, **_filters_of(args))
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
        print(views.text_table(views.RUN_HEADERS, views.run_rows(records)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    record = resolve_run(_load(args), args.show)
    print(json.dumps(record.to_dict(), indent=2, default=str) if args.json else views.show_text(record))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    table = _load(args)
    print(views.compare_text(*(resolve_run(table, ref) for ref in args.compare)))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    return orchestrate.submit(
        args.plan, root=args.root, backend=args.backend, profile=getattr(args, "profile", None),
        concurrency=args.concurrency, dry_run=args.dry_run, retry_cancelled=args.retry_cancelled, wait=args.wait,
        poll_seconds=args.poll_seconds, poll=not getattr(args, "no_poll", False))


def cmd_rerun(args: argparse.Namespace) -> int:
    return orchestrate.rerun_one(args.rerun, root=args.root, backend=args.backend, profile=args.profile,
                                 force=args.force, poll=not args.no_poll)


def cmd_rerun_failed(args: argparse.Namespace) -> int:
    return orchestrate.rerun_failed(root=args.root, backend=args.backend, profile=args.profile,
                                    max_attempts=args.max_attempts, poll=not args.no_poll, **_filters_of(args))


def cmd_cancel(args: argparse.Namespace) -> int:
    orchestrate.cancel_run(args.cancel, root=args.root)
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    changed = orchestrate.poll_slurm(_load(args).records, quiet=False)
    print(f"{changed} SLURM run(s) changed")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lw_registry.report.run_table import markdown_report

    if args.layout == "results" or args.update or args.suite:
        print(orchestrate.results_report([runs_root(args.root), *args.also_root], args.task, args.group_by,
                                         suite=args.suite, update=args.update, output=args.output,
                                         archive=args.archive, figures=args.figures, no_figures=args.no_figures))
        return 0
    statuses = parse_statuses(args.status)
    text = markdown_report(_load(args), statuses=statuses, metrics=args.metric, digits=args.digits,
                           tasks=args.task, methods=args.method, plans=args.plan)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
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
        root = runs_root(args.root)
        if root.exists() and not root.is_dir():  # else it reads as an empty root: "no runs yet"
            raise UsageError(f"runs root {root} is a file, not a folder")
        if args.command == "submit":
            return cmd_submit(args)
        if args.command == "report":
            return cmd_report(args)
        for flag, fn in (("list", cmd_list), ("show", cmd_show), ("rerun", cmd_rerun), ("compare", cmd_compare),
                         ("cancel", cmd_cancel)):
            if getattr(args, flag) is not None:  # `--show ''` is a bad id, not "no --show"
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
            print(f"error: cannot write{where}: {exc.strerror or exc} (runs root {runs_root(args.root)})", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
