"""The results tables (the README's): one row per group of completed runs with the task's headline
metric (accuracy unless a suite says otherwise), mean ± std over seeds, trainable parameters, training
time, inference time per example and message bytes.

Runs are grouped by any record fields (`--group-by`): a record attribute (`method`, `host`),
`config.<key>`, `metrics.<key>`, `params.<key>`, `env.<key>`, `hardware` or `budget` (train examples
× optimizer steps). The default, (method, budget, hardware), keeps times from a GPU and from a CPU, and
runs that saw different amounts of training, in separate rows. Within a group a seed run more than once
counts once, the latest. A method that averages several seeded draws inside one run (few-shot's
demonstrations) shows, from a single run, the std over its draws.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lw_registry.record import RunRecord
from lw_registry.table import load_table
from lw_registry.text_table import markdown_table

START, END = "<!-- results:start -->", "<!-- results:end -->"
DEFAULT_GROUP_BY = ("method", "budget", "hardware")
HEADERS = {"config.max_train_examples": "train budget", "budget": "train budget", "hardware": "hardware",
           "method": "method"}
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
SUMMARY_HEADERS = ("seeds", "trainable params", "train time (s)", "inference (ms / example)", "message bytes")
LATENCY_METRIC = "seconds_per_example"
"""The inference column's metric: the test set's scoring time per example, from raw text to answer (batched)."""
ORDER = [
    "zero-shot", "zero-shot-calibrated", "few-shot", "token-budget", "text-relay", "text-relay-answer",
    "ensemble", "probe", "probe-best-layer", "prompt-tuning", "lora", "dora",
]  # fmt: skip
"""Row order of the baselines, cheapest first; other methods (the bridge) come before them."""


@dataclasses.dataclass
class Row:
    record: RunRecord
    env: dict[str, Any]
    source: Path | None = None  # the run dir the record was read from


class Budget(NamedTuple):
    """A run's train budget: train examples and optimizer steps (None: the method has no such knob)."""

    examples: int | None
    steps: int | None

    def __str__(self) -> str:
        text = "–" if self.examples is None else f"{self.examples:,}"
        return text + (f" × {self.steps:,} steps" if self.steps is not None else "")


REDUCED_PRECISION = {"bf16": "bf16", "bfloat16": "bf16", "torch.bfloat16": "bf16", "fp16": "fp16", "float16": "fp16",
                     "torch.float16": "fp16"}


def hardware(env: dict[str, Any]) -> str:
    """What a run computed on: the GPU's short name (`H100`) or `CPU`, followed by the dtype when the
    models ran at reduced precision (`CPU bf16`): the same method in bf16 and fp32 are separate rows."""
    gpus = env.get("cuda_devices") or []
    device = str(env.get("device") or "auto")
    if gpus and not device.startswith("cpu"):
        name = next((w for w in gpus[0].split() if w != "NVIDIA"), gpus[0])
    elif device.startswith("cuda") and env.get("hardware"):
        name = next((w for w in str(env["hardware"]).split() if w != "NVIDIA"), str(env["hardware"]))
    else:
        name = "CPU" if env else "?"
    reduced = REDUCED_PRECISION.get(str(env.get("dtype")))
    return f"{name} {reduced}" if reduced else name


def field_value(row: Row, key: str) -> Any:
    """A record field by name: an attribute, `config.X`, `metrics.X`, `params.X`, `env.X`, `hardware`
    or `budget`."""
    if key == "hardware":
        return hardware(row.env)
    if key == "budget":
        config = row.record.config or {}
        return Budget(config.get("max_train_examples"), config.get("steps"))
    source, _, name = key.partition(".")
    if name and source in ("config", "metrics", "params", "env"):
        mapping = row.env if source == "env" else getattr(row.record, source) or {}
        return mapping.get(name)
    if not hasattr(row.record, key):
        fields = ", ".join(f.name for f in dataclasses.fields(RunRecord))
        raise ValueError(f"unknown group field {key!r}; use a record field ({fields}), config.X, metrics.X, "
                         f"params.X, env.X, hardware or budget")
    return getattr(row.record, key)


def _expand(record: RunRecord) -> Iterator[RunRecord]:
    """A record as rows: an interlingua bridge run gives each receiver's scores from the same message
    (`<metric>_<receiver>`); a zero-shot run recorded before `lw-tasks eval-zero-shot` wrote one run per
    calibration (with `calibrated_*` metrics) gives its calibrated row."""
    metrics = record.metrics or {}
    if (record.method or "").endswith("-interlingua"):
        for i, receiver in enumerate(record.config.get("receivers", [])):
            tag = Path(str(receiver).rstrip("/")).name
            suffix = "" if i == 0 else f"_{tag}"
            if f"accuracy{suffix}" in metrics:
                own = {k.removesuffix(suffix): v for k, v in metrics.items() if suffix and k.endswith(suffix)}
                yield dataclasses.replace(record, method=f"{record.method}@{tag}", metrics={**metrics, **own})
        return
    yield record
    if (record.method or "").startswith("zero-shot@") and "calibrated_accuracy" in metrics:
        yield dataclasses.replace(record, method=record.method.replace("zero-shot", "zero-shot-calibrated", 1),
                                  metrics={**metrics, "accuracy": metrics["calibrated_accuracy"]})


def completed_records(roots: Sequence[Path]) -> list[Row]:
    """Every completed run under the roots with its env.json (read beside the record where it was found:
    a record's own `run_dir` is stale once runs move); ValueError (one line) on an unreadable record."""
    found_rows = []
    for root in roots:
        found = load_table(root, use_cache=False)
        if found.problems:
            path, problem = found.problems[0]
            more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
            raise ValueError(f"unreadable record {path}: {problem}{more}")
        for record, path in zip(found.records, found.frame["path"], strict=True):
            if record.status != "completed":
                continue
            try:
                env = json.loads((Path(path).parent / "env.json").read_text())
            except (OSError, ValueError):
                env = {}
            found_rows.append(Row(record, env, Path(path).parent))
    return found_rows


def result_rows(found: Sequence[Row], metric: Callable[[str | None], str] = lambda task: "accuracy") -> list[Row]:
    """The rows of the results tables: completed runs with a task, a method and the task's metric (a
    number; ValueError naming the record otherwise), interlingua runs split per receiver."""
    rows = []
    for row in found:
        if not row.record.task or not row.record.method:
            continue
        name = metric(row.record.task)
        for record in _expand(row.record):
            value = (record.metrics or {}).get(name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"record {row.source}: metric {name} is {value!r}, not a number")
            rows.append(Row(record, row.env, row.source))
    return rows


def _mean_std(mean: float, std: float | None) -> str:
    return f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}")


@dataclasses.dataclass
class Group:
    """The runs of one table row (one per seed, the latest) and their summary."""

    key: tuple
    runs: list[RunRecord]
    metric: str

    def values(self, name: str | None = None) -> list[float]:
        name = name or self.metric
        return [float(r.metrics[name]) for r in self.runs if isinstance(r.metrics.get(name), (int, float))]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values())

    @property
    def std(self) -> float | None:
        """The std over seeds; from one run of several seeded draws, the std over its draws."""
        if len(self.runs) > 1:
            return statistics.stdev(self.values())
        return self.runs[0].metrics.get(f"{self.metric}_draw_std") if self.draws > 1 else None

    @property
    def draws(self) -> int:
        return int(self.runs[0].metrics.get("draws") or 1) if len(self.runs) == 1 else 1

    def _count(self, unit: str = "") -> str:
        if self.draws > 1 and self.std is not None:
            return f"1{unit} × {self.draws} draws"
        return f"{len(self.runs)}{unit}{'s' * (bool(unit) and len(self.runs) != 1)}"

    def text(self) -> str:
        """`0.820 ± 0.020 (3 seeds)`, for sentences."""
        return f"{_mean_std(self.mean, self.std)} ({self._count(' seed')})"

    def cells(self) -> list[str]:
        params = statistics.fmean(float(r.metrics.get("trainable_params") or 0) for r in self.runs)
        train = statistics.fmean(float(r.metrics.get("train_seconds") or 0) for r in self.runs)
        per_example = self.values(LATENCY_METRIC)
        latency = f"{1000 * statistics.fmean(per_example):.0f}" if per_example else ""
        return [_mean_std(self.mean, self.std), self.validation(), self._count(), f"{params:,.0f}", _seconds(train),
                latency, self.message_bytes()]

    def validation(self) -> str:
        """The metric on validation (what selection saw), mean ± std over the runs that report it."""
        values = self.values(f"val_{self.metric}")
        if not values:
            return ""
        return _mean_std(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None)

    def message_bytes(self) -> str:
        """What crosses from sender to receiver: a text relay's mean message, the bridge's smallest wire
        format (its format in brackets); blank for a model reading the text itself."""
        relay = self.values("message_bytes")
        if relay:
            return f"{statistics.fmean(relay):,.0f}"
        wire = {k.removeprefix("wire_bytes_"): v for k, v in self.runs[0].metrics.items()
                if k.startswith("wire_bytes_") and isinstance(v, (int, float))}
        if not wire:
            return ""
        smallest = min(wire, key=lambda fmt: wire[fmt])
        return f"{wire[smallest]:,.0f} ({smallest})"


def _rank(method: str) -> tuple[int, str]:
    base = method.split("@")[0]
    return (ORDER.index(base) + 1 if base in ORDER else 0, method)


def _sort_key(key: tuple, order: Sequence[str] = ()) -> tuple:
    out = []
    for i, v in enumerate(key):
        if i == 0 and isinstance(v, str):
            out.append((order.index(v), "") if v in order else (len(order), *_rank(v)))
        elif isinstance(v, Budget):
            out.append((0, *(-1 if x is None else x for x in v)))
        else:
            out.append((0, v) if isinstance(v, (int, float)) else (1, str(v)))
    return tuple(out)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def group_rows(rows: Sequence[Row], group_by: Sequence[str], metric: Callable[[str | None], str],
               order: Sequence[str] = ()) -> dict[str, list[Group]]:
    """Rows grouped per task by `group_by` (a seed once, the latest run), groups in table order: the
    first key by `order`, else the bridge first and the baselines cheapest first."""
    latest: dict[tuple, Row] = {}
    for row in sorted(rows, key=lambda r: r.record.finished_at or ""):
        key = tuple(field_value(row, k) for k in group_by)
        latest[(row.record.task, key, row.record.seed)] = row
    runs: dict[str, dict[tuple, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for (task, key, _), row in latest.items():
        runs[task][key].append(row.record)
    return {task: [Group(key, by_key[key], metric(task)) for key in sorted(by_key, key=lambda k: _sort_key(k, order))]
            for task, by_key in runs.items()}


def task_table(groups: Sequence[Group], group_by: Sequence[str]) -> str:
    """One task's table (markdown): the group keys, then the summary columns."""
    metric = groups[0].metric
    headers = [HEADERS.get(k, k.removeprefix("params.")) for k in group_by]
    headers += [f"{METRIC_LABELS.get(metric, metric)} (mean ± std)", "validation", *SUMMARY_HEADERS]
    # key columns after the first are right-aligned when they hold numbers (the train budget)
    align = "l" + "".join("r" if any(isinstance(g.key[i], (int, float, Budget)) for g in groups) else "l"
                          for i in range(1, len(group_by))) + "r" * (len(SUMMARY_HEADERS) + 2)
    text = markdown_table(headers, [[*map(_cell, g.key), *g.cells()] for g in groups], align=align)
    majority = [r.metrics["majority_rate"] for g in groups for r in g.runs if r.metrics.get("majority_rate")]
    return text + (f"\n\nMajority-class rate of the test split: {majority[0]:.3f}." if majority else "")


def tables_markdown(grouped: Mapping[str, Sequence[Group]], tasks: Sequence[str], group_by: Sequence[str],
                    heading: str = "### {task}", after: Callable[[str], list[str]] | None = None) -> list[str]:
    """A heading and a table per task (`_no completed runs_` where it has none), as lines; `after(task)`
    adds lines under a task's table."""
    lines = []
    for task in tasks:
        lines += [heading.format(task=task), ""]
        if not grouped.get(task):
            lines += ["_no completed runs_", ""]
            continue
        lines += [task_table(grouped[task], group_by), "", *(after(task) if after else [])]
    return lines


def results_table(roots: Path | Sequence[Path], tasks: Sequence[str] | None = None,
                  group_by: Sequence[str] = DEFAULT_GROUP_BY,
                  metric: Callable[[str | None], str] = lambda task: "accuracy") -> str:
    """The results table per task, rows grouped by `group_by` (markdown)."""
    roots = [roots] if isinstance(roots, Path) else list(roots)
    grouped = group_rows(result_rows(completed_records(roots), metric), group_by, metric)
    return "\n".join(tables_markdown(grouped, tasks or sorted(grouped), group_by))


def current_section(path: Path, start: str = START, end: str = END) -> str:
    """What stands between the markers in `path`; ValueError without them."""
    content = path.read_text()
    if start not in content or end not in content:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    return content.split(start, 1)[1].split(end, 1)[0].strip("\n")


def update_between_markers(path: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace what stands between the markers in `path` (written atomically); ValueError without them."""
    current_section(path, start, end)
    head, rest = path.read_text().split(start, 1)
    tail = rest.split(end, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    tmp.replace(path)
