"""The README results table from run records: one row per method (baselines and the bridge alike),
accuracy mean ± std over seeds, trainable parameters, training time and inference time per example.

    uv run lw-registry submit packages/lw-baselines/plans/baselines-deterministic.toml
    uv run lw-registry submit packages/lw-baselines/plans/baselines.toml
    uv run python packages/lw-baselines/scripts/results_table.py [--root runs ...] [--task rt-sentiment --task 20ng]
    uv run python packages/lw-baselines/scripts/results_table.py --update README.md   # rewrite the README's table

Every completed run under the roots with a task, a method and an `accuracy` metric counts (any plan,
`lw-baseline all`, `lw-train`). Runs are grouped by (method, train budget, hardware): times from a GPU
and from a CPU never share a row, nor do runs that saw different amounts of training data. Within a
group a seed run more than once counts once, the latest. A method that averages several seeded
draws inside one run (few-shot's demonstrations) shows, from a single run, the std over its draws.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from lw_core.models import model_tag
from lw_registry.table import load_table

START, END = "<!-- results:start -->", "<!-- results:end -->"
ORDER = [
    "zero-shot", "zero-shot-calibrated", "few-shot", "token-budget", "text-relay", "text-relay-answer",
    "ensemble", "probe", "probe-best-layer", "prompt-tuning", "lora", "dora",
]  # fmt: skip


def _rank(method: str) -> tuple[int, str]:
    base = method.split("@")[0]
    return (ORDER.index(base) + 1 if base in ORDER else 0, method)  # the bridge (not a baseline) first


def _fmt_seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _rows(record):
    """A record as table rows: an `lw-tasks eval-zero-shot` run holds the calibrated scores too, an
    interlingua bridge run each receiver's scores from the same message."""
    metrics = record.metrics
    if record.method == "bridge-interlingua":
        receivers = [model_tag(r) for r in record.config.get("receivers", [])]
        for i, tag in enumerate(receivers):
            suffix = "" if i == 0 else f"_{tag}"
            if f"accuracy{suffix}" in metrics:
                yield dataclasses.replace(record, method=f"bridge-interlingua@{tag}", metrics={
                    **metrics, "accuracy": metrics[f"accuracy{suffix}"],
                    "seconds_per_example": metrics.get(f"seconds_per_example{suffix}")})
        return
    yield record
    if record.method.startswith("zero-shot@") and "calibrated_accuracy" in metrics:
        yield dataclasses.replace(record, method=record.method.replace("zero-shot", "zero-shot-calibrated", 1),
                                  metrics={**metrics, "accuracy": metrics["calibrated_accuracy"]})


def hardware(run_dir: Path) -> str:
    """What the run computed on, from its `env.json`: the GPU's short name (`H100`) or `CPU`."""
    try:
        env = json.loads((run_dir / "env.json").read_text())
    except (OSError, ValueError):
        return "?"
    gpus = env.get("cuda_devices") or []
    if gpus and not str(env.get("device") or "auto").startswith("cpu"):
        return next((w for w in gpus[0].split() if w != "NVIDIA"), gpus[0])
    return "CPU"


def _runs(roots: list[Path]):
    """(record, hardware) of every completed run with an accuracy under the roots. The hardware is
    read beside the record where it was found (a record's own `run_dir` is stale once runs move)."""
    for root in roots:
        found = load_table(root, use_cache=False)
        for r, path in zip(found.records, found.frame["path"], strict=True):
            if r.status == "completed" and r.task and r.method and "accuracy" in (r.metrics or {}):
                yield r, hardware(Path(path).parent)


def table(roots: Path | list[Path], tasks: list[str] | None) -> str:
    roots = [roots] if isinstance(roots, Path) else roots
    latest: dict[tuple, tuple] = {}
    rows = ((row, hw) for r, hw in _runs(roots) for row in _rows(r))
    for r, hw in sorted(rows, key=lambda rh: rh[0].finished_at or ""):
        latest[(r.task, r.method, r.config.get("max_train_examples"), hw, r.seed)] = (r, hw)
    groups: dict[str, dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    for (task, method, budget, hw, _), (r, _) in latest.items():
        if tasks is None or task in tasks:
            groups[task][(method, budget, hw)].append(r)
    lines = []
    for task in tasks or sorted(groups):
        if task not in groups:
            lines += [f"### {task}", "", "_no completed runs_", ""]
            continue
        lines += [f"### {task}", "",
                  "| method | train budget | hardware | accuracy (mean ± std) | seeds | trainable params | train time (s) | inference (ms / example) |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for method, budget, hw in sorted(groups[task], key=lambda k: (*_rank(k[0]), k[1] or 0, k[2])):
            runs = groups[task][(method, budget, hw)]
            acc = [r.metrics["accuracy"] for r in runs]
            std = f" ± {statistics.stdev(acc):.3f}" if len(acc) > 1 else ""
            count = str(len(runs))
            draws = int(runs[0].metrics.get("draws") or 1)
            if len(runs) == 1 and draws > 1 and "accuracy_draw_std" in runs[0].metrics:
                # one run of independently seeded draws (few-shot demonstrations): the std is over draws
                std, count = f" ± {runs[0].metrics['accuracy_draw_std']:.3f}", f"1 × {draws} draws"
            params = statistics.fmean(float(r.metrics.get("trainable_params") or 0) for r in runs)
            train = statistics.fmean(float(r.metrics.get("train_seconds") or 0) for r in runs)
            per_example = [r.metrics.get("seconds_per_example") for r in runs if r.metrics.get("seconds_per_example")]
            infer = f"{1000 * statistics.fmean(per_example):.0f}" if per_example else "–"
            lines.append(f"| {method} | {f'{budget:,}' if budget else '–'} | {hw} | {statistics.fmean(acc):.3f}{std} | {count} | {params:,.0f} | "
                         f"{_fmt_seconds(train)} | {infer} |")
        majority = [r.metrics.get("majority_rate") for rs in groups[task].values() for r in rs if r.metrics.get("majority_rate")]
        if majority:
            lines.append(f"\nMajority-class rate of the test split: {majority[0]:.3f}.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", action="append", help="runs root, repeatable (default $LW_RUNS, else ./runs)")
    parser.add_argument("--task", action="append", help="task(s) to show (default: every task found)")
    parser.add_argument("--update", metavar="FILE", help=f"write the table into FILE between {START} and {END}")
    args = parser.parse_args(argv)
    import os

    roots = [Path(r) for r in args.root or [os.environ.get("LW_RUNS", "runs")]]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        print(f"error: runs root {', '.join(missing)} does not exist", file=sys.stderr)
        return 2
    text = table(roots, args.task)
    if args.update:
        return update(Path(args.update), text)
    print(text)
    return 0


def update(path: Path, text: str) -> int:
    """Replace what stands between the markers in `path` (written atomically)."""
    content = path.read_text()
    if START not in content or END not in content:
        print(f"error: {path} has no {START} ... {END} markers", file=sys.stderr)
        return 2
    head, rest = content.split(START, 1)
    tail = rest.split(END, 1)[1]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{head}{START}\n{text.rstrip()}\n{END}{tail}")
    tmp.replace(path)
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
