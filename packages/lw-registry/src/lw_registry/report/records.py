"""Collecting results: the completed runs under some runs roots, each with its env.json, as rows of the
results tables (one row per receiver of an interlingua run; a QA bridge run's controls as rows of their
own), and the record fields rows are grouped by.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lw_registry.record import RunRecord
from lw_registry.report.qa import GENERATIVE_METRIC, control_rows, joint_row, layout_fields
from lw_registry.table import load_table


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
    (`<metric>_<receiver>`); a QA bridge run adds its controls and an interlingua's joint rescoring
    (lw_registry.report.qa); a zero-shot run recorded before `lw-tasks eval-zero-shot` wrote one run per
    calibration (with `calibrated_*` metrics) gives its calibrated row."""
    metrics, method = record.metrics or {}, record.method or ""
    fields = layout_fields(record)
    if method.endswith("-interlingua"):
        for i, receiver in enumerate(record.config.get("receivers", [])):
            tag = Path(str(receiver).rstrip("/")).name
            suffix = "" if i == 0 else f"_{tag}"
            if f"accuracy{suffix}" in metrics or f"{GENERATIVE_METRIC}{suffix}" in metrics:
                own = {k.removesuffix(suffix): v for k, v in metrics.items() if suffix and k.endswith(suffix)}
                one = dataclasses.replace(record, method=f"{method}{fields}@{tag}", metrics={**metrics, **own})
                yield one
                yield from control_rows(one, "" if i == 0 else f"@{tag}", fields)
        yield from joint_row(record, f"{method}{fields}")
        return
    base, at, receiver = method.partition("@")
    yield dataclasses.replace(record, method=f"{base}{fields}{at}{receiver}") if fields else record
    yield from control_rows(record, f"{at}{receiver}", fields)
    if method.startswith("zero-shot@") and "calibrated_accuracy" in metrics:
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
