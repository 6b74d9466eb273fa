"""The results table (the README's): one row per group of completed runs with an accuracy,
mean ± std over seeds, trainable parameters, training time and inference time per example.

Runs are grouped by any record fields (`--group-by`): a record attribute (`method`, `host`),
`config.<key>`, `metrics.<key>`, `env.<key>` or `hardware`. The default, (method, train budget,
hardware), keeps times from a GPU and from a CPU, and runs that saw different amounts of training
data, in separate rows. Within a group a seed run more than once counts once, the latest. A method
that averages several seeded draws inside one run (few-shot's demonstrations) shows, from a single
run, the std over its draws.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lw_registry.record import RunRecord
from lw_registry.table import load_table
from lw_registry.text_table import markdown_table

START, END = "<!-- results:start -->", "<!-- results:end -->"
DEFAULT_GROUP_BY = ("method", "config.max_train_examples", "hardware")
HEADERS = {"config.max_train_examples": "train budget", "hardware": "hardware", "method": "method"}
ORDER = [
    "zero-shot", "zero-shot-calibrated", "few-shot", "token-budget", "text-relay", "text-relay-answer",
    "ensemble", "probe", "probe-best-layer", "prompt-tuning", "lora", "dora",
]  # fmt: skip
"""Row order of the baselines, cheapest first; other methods (the bridge) come before them."""


@dataclasses.dataclass
class Row:
    record: RunRecord
    env: dict[str, Any]


def hardware(env: dict[str, Any]) -> str:
    """What a run computed on: the GPU's short name (`H100`) or `CPU`."""
    gpus = env.get("cuda_devices") or []
    if gpus and not str(env.get("device") or "auto").startswith("cpu"):
        return next((w for w in gpus[0].split() if w != "NVIDIA"), gpus[0])
    return "CPU" if env else "?"


def field_value(row: Row, key: str) -> Any:
    """A record field by name: an attribute, `config.X`, `metrics.X`, `env.X` or `hardware`."""
    if key == "hardware":
        return hardware(row.env)
    source, _, name = key.partition(".")
    if name and source in ("config", "metrics", "env"):
        mapping = row.env if source == "env" else getattr(row.record, source) or {}
        return mapping.get(name)
    if not hasattr(row.record, key):
        fields = ", ".join(f.name for f in dataclasses.fields(RunRecord))
        raise ValueError(f"unknown group field {key!r}; use a record field ({fields}), config.X, metrics.X, "
                         f"env.X or hardware")
    return getattr(row.record, key)


def _expand(record: RunRecord) -> Iterator[RunRecord]:
    """A record as rows: an interlingua bridge run gives each receiver's scores from the same message
    (`accuracy_<receiver>`); a zero-shot run recorded before `lw-tasks eval-zero-shot` wrote one run per
    calibration (with `calibrated_*` metrics) gives its calibrated row."""
    metrics = record.metrics or {}
    if record.method == "bridge-interlingua":
        for i, receiver in enumerate(record.config.get("receivers", [])):
            tag = Path(str(receiver).rstrip("/")).name
            suffix = "" if i == 0 else f"_{tag}"
            if f"accuracy{suffix}" in metrics:
                yield dataclasses.replace(record, method=f"bridge-interlingua@{tag}", metrics={
                    **metrics, "accuracy": metrics[f"accuracy{suffix}"],
                    "seconds_per_example": metrics.get(f"seconds_per_example{suffix}")})
        return
    yield record
    if (record.method or "").startswith("zero-shot@") and "calibrated_accuracy" in metrics:
        yield dataclasses.replace(record, method=record.method.replace("zero-shot", "zero-shot-calibrated", 1),
                                  metrics={**metrics, "accuracy": metrics["calibrated_accuracy"]})


def completed_rows(roots: Sequence[Path]) -> list[Row]:
    """Every completed run with a task, a method and an accuracy under the roots, with its env.json
    (read beside the record where it was found: a record's own `run_dir` is stale once runs move)."""
    rows = []
    for root in roots:
        found = load_table(root, use_cache=False)
        for record, path in zip(found.records, found.frame["path"], strict=True):
            if record.status != "completed" or not record.task or not record.method:
                continue
            try:
                env = json.loads((Path(path).parent / "env.json").read_text())
            except (OSError, ValueError):
                env = {}
            rows += [Row(r, env) for r in _expand(record) if "accuracy" in (r.metrics or {})]
    return rows


def _rank(method: str) -> tuple[int, str]:
    base = method.split("@")[0]
    return (ORDER.index(base) + 1 if base in ORDER else 0, method)


def _sort_key(key: tuple) -> tuple:
    return tuple(_rank(v) if i == 0 and isinstance(v, str) else (0, v) if isinstance(v, (int, float)) else (1, str(v))
                 for i, v in enumerate(key))


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _summary(runs: list[RunRecord]) -> list[str]:
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
    return [f"{statistics.fmean(acc):.3f}{std}", count, f"{params:,.0f}", _seconds(train), infer]


def results_table(roots: Path | Sequence[Path], tasks: Sequence[str] | None = None,
                  group_by: Sequence[str] = DEFAULT_GROUP_BY) -> str:
    """The results table per task, rows grouped by `group_by` (markdown)."""
    roots = [roots] if isinstance(roots, Path) else list(roots)
    latest: dict[tuple, Row] = {}
    for row in sorted(completed_rows(roots), key=lambda r: r.record.finished_at or ""):
        key = tuple(field_value(row, k) for k in group_by)
        latest[(row.record.task, key, row.record.seed)] = row
    groups: dict[str, dict[tuple, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for (task, key, _), row in latest.items():
        if tasks is None or task in tasks:
            groups[task][key].append(row.record)
    headers = [HEADERS.get(k, k) for k in group_by]
    headers += ["accuracy (mean ± std)", "seeds", "trainable params", "train time (s)", "inference (ms / example)"]
    lines = []
    for task in tasks or sorted(groups):
        lines += [f"### {task}", ""]
        if task not in groups:
            lines += ["_no completed runs_", ""]
            continue
        keys = sorted(groups[task], key=_sort_key)
        rows = [[*map(_cell, key), *_summary(groups[task][key])] for key in keys]
        text = markdown_table(headers, rows, right=len(headers) - 1)
        # the key columns after the first are left-aligned unless numeric (the train budget)
        align = ["---"] + [("---:" if any(isinstance(k[i], (int, float)) for k in keys) else "---")
                           for i in range(1, len(group_by))] + ["---:"] * 5
        lines += [text.splitlines()[0], "|" + "|".join(align) + "|", *text.splitlines()[2:]]
        majority = [r.metrics.get("majority_rate") for rs in groups[task].values() for r in rs
                    if r.metrics.get("majority_rate")]
        if majority:
            lines.append(f"\nMajority-class rate of the test split: {majority[0]:.3f}.")
        lines.append("")
    return "\n".join(lines)


def update_between_markers(path: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace what stands between the markers in `path` (written atomically); ValueError without them."""
    content = path.read_text()
    if start not in content or end not in content:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    tmp.replace(path)


def results_report(roots: Sequence[Path], tasks: Sequence[str] | None = None, group_by: Sequence[str] | None = None,
                   *, update: str | None = None, output: str | None = None) -> str:
    """`lw-registry report --layout results`: the table, written between the markers of `update`, to
    `output`, or returned for printing; ValueError (one line) on a missing root, file or marker."""
    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:
        raise ValueError(f"runs root {', '.join(missing)} does not exist")
    text = results_table(roots, tasks, group_by or DEFAULT_GROUP_BY)
    if update:
        update_between_markers(Path(update), text)
        return f"updated {update}"
    if output:
        Path(output).write_text(text)
        return f"wrote {output}"
    return text
