"""Rendering the results tables (markdown): one table per task with the task's headline metric (accuracy
unless a suite says otherwise), mean ± std over seeds, trainable parameters, training time, inference
time per example and message bytes; accuracy tables end with a chance row (1 / the task's answer count)
and a majority-class row (the test split's majority share), both as the runs recorded them. A QA table
(F1) has EM and first-token accuracy beside F1 and no chance or majority row (lw_registry.report.qa).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lw_registry.report.groups import DEFAULT_GROUP_BY, Group, group_rows
from lw_registry.report.qa import BESIDE, GENERATIVE_METRIC, with_generative
from lw_registry.report.records import Budget, completed_records, result_rows
from lw_registry.text_table import markdown_table

HEADERS = {"config.max_train_examples": "train budget", "budget": "train budget", "hardware": "hardware",
           "method": "method"}
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", GENERATIVE_METRIC: "F1"}
SUMMARY_HEADERS = ("seeds", "trainable params", "train time (s)", "inference (ms / example)", "message bytes")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def task_table(groups: Sequence[Group], group_by: Sequence[str]) -> str:
    """One task's table (markdown): the group keys, then the summary columns."""
    metric = groups[0].metric
    beside = [k for k in BESIDE if metric == GENERATIVE_METRIC and any(g.values(k) for g in groups)]
    headers = [HEADERS.get(k, k.removeprefix("params.")) for k in group_by]
    headers += [f"{METRIC_LABELS.get(metric, metric)} (mean ± std)", *(BESIDE[k] for k in beside), "validation",
                *SUMMARY_HEADERS]
    # key columns after the first are right-aligned when they hold numbers (the train budget)
    align = "l" + "".join("r" if any(isinstance(g.key[i], (int, float, Budget)) for g in groups) else "l"
                          for i in range(1, len(group_by))) + "r" * (len(SUMMARY_HEADERS) + 2 + len(beside))
    rows = [[*map(_cell, g.key), *g.cells(beside)] for g in groups]
    majority = _recorded(groups, "majority_rate")
    if metric != "accuracy":  # chance and majority rows are accuracies: other metrics get the rate in words
        text = markdown_table(headers, rows, align=align)
        return text + (f"\n\nMajority-class rate of the test split: {majority:.3f}." if majority else "")
    blank = [""] * (len(group_by) - 1)  # the other key columns; the metric column holds the rate
    answers = _recorded(groups, "n_answers")
    if answers:
        rows.append([f"chance (1 / {answers:.0f} answers)", *blank, f"{1 / answers:.3f}"])
    if majority:
        rows.append(["majority class (test split)", *blank, f"{majority:.3f}"])
    return markdown_table(headers, [r + [""] * (len(headers) - len(r)) for r in rows], align=align)


def _recorded(groups: Sequence[Group], name: str) -> float | None:
    """A fact of the task's test split its runs record (`majority_rate`, `n_answers`): the first found."""
    return next((float(r.metrics[name]) for g in groups for r in g.runs if r.metrics.get(name)), None)


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
    found = completed_records(roots)
    metric = with_generative(metric, [r.record for r in found], "accuracy")
    grouped = group_rows(result_rows(found, metric), group_by, metric)
    return "\n".join(tables_markdown(grouped, tasks or sorted(grouped), group_by))
