"""The rows of the results tables: runs grouped by any record fields (`--group-by`): a record attribute
(`method`, `host`), `config.<key>`, `metrics.<key>`, `params.<key>`, `env.<key>`, `hardware` or `budget`
(train examples × optimizer steps). The default, (method, budget, hardware), keeps times from a GPU and
from a CPU, and runs that saw different amounts of training, in separate rows. Within a group a seed run
more than once counts once, the latest. A method that averages several seeded draws inside one run
(few-shot's demonstrations) shows, from a single run, the std over its draws.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence

from lw_registry.record import RunRecord
from lw_registry.report.records import Budget, Row, field_value

DEFAULT_GROUP_BY = ("method", "budget", "hardware")
LATENCY_METRIC = "seconds_per_example"
"""The inference column's metric: the test set's scoring time per example, from raw text to answer (batched)."""
ORDER = [
    "zero-shot", "zero-shot-calibrated", "text-upper-bound", "few-shot", "token-budget", "text-relay",
    "text-relay-answer", "ensemble", "probe", "probe-best-layer", "prompt-tuning", "lora", "dora",
]  # fmt: skip
"""Row order of the baselines, cheapest first; other methods (the bridge) come before them."""


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

    def cells(self, beside: Sequence[str] = ()) -> list[str]:
        """The row's cells after its key: the metric, the metrics `beside` it (blank where none is recorded),
        validation, seeds, trainable params, train time, inference time, message bytes."""
        params = statistics.fmean(float(r.metrics.get("trainable_params") or 0) for r in self.runs)
        train = statistics.fmean(float(r.metrics.get("train_seconds") or 0) for r in self.runs)
        per_example = self.values(LATENCY_METRIC)
        latency = f"{1000 * statistics.fmean(per_example):.0f}" if per_example else ""
        return [_mean_std(self.mean, self.std), *map(self.summary, beside), self.validation(), self._count(),
                f"{params:,.0f}", _seconds(train), latency, self.message_bytes()]

    def validation(self) -> str:
        """The metric on validation (what selection saw), mean ± std over the runs that report it."""
        return self.summary(f"val_{self.metric}")

    def summary(self, name: str) -> str:
        """A metric's mean ± std over the runs that report it; blank where none does."""
        values = self.values(name)
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


def label(group: Group) -> str:
    """`lora (3,000 × 100 steps, CPU)`: a row's first key, the others in brackets."""
    rest = ", ".join(str(k) for k in group.key[1:] if k is not None)
    return f"{group.key[0]} ({rest})" if rest else str(group.key[0])


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
