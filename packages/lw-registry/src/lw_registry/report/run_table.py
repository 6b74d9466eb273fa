"""Markdown result tables for the README: mean ± std over seeds, per task, one row per method (× params)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from lw_registry.table import METRIC_PREFIX, Table, filter_runs, format_mean_std, summarize
from lw_registry.text_table import markdown_table


def markdown_report(
    table: Table,
    *,
    statuses: Sequence[str] = ("completed",),
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    plans: Sequence[str] | None = None,
) -> str:
    frame = filter_runs(table.frame, status=list(statuses), task=tasks, method=methods, plan=plans)
    wanted = [m.removeprefix(METRIC_PREFIX) for m in metrics] if metrics else [
        c.removeprefix(METRIC_PREFIX) for c in frame.columns
        if c.startswith(METRIC_PREFIX) and frame[c].null_count() < frame.height
    ]
    unknown = [m for m in wanted if METRIC_PREFIX + m not in frame.columns]
    lines = [f"<!-- lw-registry report: {frame.height} run(s) ({', '.join(statuses)}) under {table.root} -->", ""]
    if frame.height == 0:
        return "\n".join([*lines, "_No runs to report._", ""])
    if unknown:
        known = sorted(c.removeprefix(METRIC_PREFIX) for c in frame.columns if c.startswith(METRIC_PREFIX))
        lines += [f"_No values for metric(s) {', '.join(unknown)}; known: {', '.join(known)}._", ""]
        wanted = [m for m in wanted if m not in unknown]
    summary = summarize(frame, wanted)
    with_params = summary["params"].str.len_chars().max() not in (0, None)
    for task in summary["task"].unique(maintain_order=True).to_list():
        part = summary.filter(pl.col("task") == task)
        lines += [f"### {task or '(no task)'}", ""]
        headers = ["method", *(["params"] if with_params else []), "seeds", *wanted]
        rows: list[list[Any]] = []
        for row in part.iter_rows(named=True):
            cells: list[Any] = [row["method"] or "–", *([row["params"]] if with_params else []), row["n"]]
            rows.append(cells + [format_mean_std(row[f"{m}_mean"], row[f"{m}_std"], digits) for m in wanted])
        lines += [markdown_table(headers, rows, right=len(wanted)), ""]
    lines.append("Mean ± sample std over seeds; `seeds` is the number of runs averaged.")
    lines.append("")
    return "\n".join(lines)
