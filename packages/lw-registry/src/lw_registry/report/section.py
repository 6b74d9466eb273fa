"""The README's results section, assembled from run records: what we found (lw_registry.report.findings),
a table per task, accuracy against message bytes, latency against input length, the training step
against the answer-set size, serving under load (lw-bench serve), the ablation tables and the suite's runs not completed yet. Figures are
described here (file name, what to draw) and drawn by lw_registry.report.figures; lw_registry.report.publish
writes the section, the figures and the archive.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from lw_registry.report import figures
from lw_registry.report.findings import (
    ablation_findings,
    bytes_metric,
    bytes_series,
    control_findings,
    task_findings,
    wire_findings,
)
from lw_registry.report.groups import DEFAULT_GROUP_BY, Group, group_rows, label
from lw_registry.report.qa import with_generative
from lw_registry.report.records import Row, result_rows
from lw_registry.report.tables import METRIC_LABELS, tables_markdown
from lw_registry.suite import DEFAULT_METRIC, Suite, missing_runs
from lw_registry.text_table import markdown_table

BENCH_SCALING = "bench-scaling"
BENCH_TRAIN = "bench-train"
BENCH_SERVE = "bench-serve"
BENCH_LIMIT = "bench-limit"
NAMES_SHOWN = 4


@dataclasses.dataclass
class Section:
    text: str
    figures: list[tuple[str, Callable[[Path], str]]]  # (file name, draw(path))
    used: list[Row]  # the records the section is computed from (the archive's content)


def latest_bench(found: Sequence[Row], method: str, key: str) -> tuple[Row, dict[str, Any]] | None:
    """The latest completed `lw-bench` run of `method` whose results.json has a non-empty `key`;
    ValueError if that file is unreadable."""
    for row in sorted((r for r in found if r.record.method == method and r.source is not None),
                      key=lambda r: r.record.finished_at or "", reverse=True):
        path = row.source / "results.json"
        try:
            results = json.loads(path.read_text())
            if not isinstance(results, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable lw-bench {method.removeprefix('bench-')} results {path}: {exc}") from None
        if results.get(key):
            return row, results
    return None


def scaling_results(found: Sequence[Row]) -> tuple[Row, dict[str, Any]] | None:
    """The latest completed `lw-bench scaling` run with its results.json; ValueError if that is unreadable."""
    bench = latest_bench(found, BENCH_SCALING, "lengths")
    if bench is not None and not isinstance(bench[1].get("p50_ms"), dict):
        raise ValueError(f"unreadable lw-bench scaling results {bench[0].source / 'results.json'}: no p50_ms")
    return bench


def _missing_lines(suite: Suite, found: Sequence[Row], base: Path) -> list[str]:
    lines = []
    for plan, names in missing_runs(suite, [r.record for r in found]):
        if not names:
            continue
        where = Path(relative_path(plan.path, base)).as_posix() if plan.path else plan.name
        shown = ", ".join(n.removeprefix(f"{plan.name}/") for n in names[:NAMES_SHOWN])
        more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        lines.append(f"- `{plan.name}` ({where}): {len(names)} of {len(plan.runs)} runs not completed: {shown}{more}")
    return lines or ["Every run of the suite has completed."]


def relative_path(path: Path, base: Path) -> str:
    """`path` relative to `base` (posix), or as given when it lies elsewhere."""
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


@dataclasses.dataclass
class _Parts:
    """What the section's parts collect besides their lines: findings, figures to draw, records used."""

    link: str  # the figures' folder, relative to the updated file
    found: list[str] = dataclasses.field(default_factory=list)
    draw: list[tuple[str, Callable[[Path], str]]] = dataclasses.field(default_factory=list)
    used: set[str] = dataclasses.field(default_factory=set)

    def figure(self, name: str, draw: Callable[[Path], str], alt: str) -> str:
        self.draw.append((name, draw))
        return f"![{alt}]({self.link}/{name})"

    def use(self, grouped: dict[str, list[Group]]) -> None:
        self.used |= {r.id for groups in grouped.values() for g in groups for r in g.runs}


def _task_tables(parts: _Parts, grouped: dict[str, list[Group]], tasks: Sequence[str], group_by: Sequence[str],
                 metric: Callable[[str | None], str]) -> list[str]:
    def accuracy_figure(task: str) -> list[str]:
        what = METRIC_LABELS.get(metric(task), metric(task))
        bars = [(label(g), g.mean, g.std) for g in grouped[task]]
        draw = partial(figures.bars_figure, title=f"{task}: test {what}, mean ± std over seeds",
                       xlabel=f"test {what}", bars=bars)
        return [parts.figure(f"accuracy-{task}.png", draw, f"{what} per method on {task}"), ""]

    parts.use(grouped)
    parts.found += [task_findings(t, grouped[t]) for t in tasks if grouped.get(t)]
    parts.found += [line for t in tasks if grouped.get(t) for line in control_findings(t, grouped[t])]
    return tables_markdown(grouped, tasks, group_by, after=accuracy_figure)


def _wire(parts: _Parts, grouped: dict[str, list[Group]], tasks: Sequence[str]) -> list[str]:
    lines = ["### Accuracy against message bytes", ""]
    for task in tasks:
        series = bytes_series(grouped.get(task, []))
        if not series:
            lines.append(f"- {task}: missing (no completed bridge run scored at wire precisions, `--wire-formats`)")
            continue
        what = METRIC_LABELS[bytes_metric(grouped[task][0])]
        draw = partial(figures.bytes_figure, title=f"{task}: test {what} against bytes sent",
                       ylabel=f"test {what}", series=series)
        lines.append(f"- {task}: " + parts.figure(f"bytes-{task}.png", draw, f"accuracy against message bytes on {task}"))
        parts.found += wire_findings(task, grouped[task])
    return [*lines, ""]


def _scaling(parts: _Parts, found: Sequence[Row]) -> list[str]:
    lines = ["### Latency against input length", ""]
    bench = scaling_results(found)
    if bench is None:
        return [*lines, f"Missing: no completed `lw-bench scaling` run ({BENCH_SCALING}).", ""]
    row, results = bench
    parts.used.add(row.record.id)
    lines.append(parts.figure("latency-scaling.png", partial(figures.scaling_figure, results),
                              "latency against input length"))
    env, meet = results.get("environment") or {}, results.get("bridge_equals_direct_at_tokens")
    cheaper = results.get("bridge_cheaper_at_measured_lengths") or []
    parts.found.append(
        f"- **latency** (lw-bench scaling, {env.get('task', '?')}, {env.get('device', '?')}): the fitted lines of "
        + (f"bridge and direct meet at {meet:,.0f} input tokens" if isinstance(meet, (int, float)) and meet > 0 else
           "bridge and direct do not meet at a positive length")
        + "; the bridge was cheaper than the receiver reading the text at "
        + (f"{', '.join(map(str, cheaper))} tokens." if cheaper else
           f"none of the measured lengths ({', '.join(map(str, results['lengths']))} tokens)."))
    return [*lines, ""]


def _bench_part(parts: _Parts, found: Sequence[Row], heading: str, method: str, key: str, command: str
                ) -> tuple[list[str], dict[str, Any] | None]:
    """A benchmark's heading and its latest results (marked used), or the heading and a "Missing" line."""
    lines = [f"### {heading}", ""]
    bench = latest_bench(found, method, key)
    if bench is None:
        return [*lines, f"Missing: no completed `{command}` run ({method}).", ""], None
    parts.used.add(bench[0].record.id)
    return lines, bench[1]


ANSWER_COLUMNS = ("answers", "rule", "scored as", "answer tokens", "trie nodes", "s/step", "peak MiB",
                  "relative to first")
"""lw-bench's column order (its results.json stores rows with sorted keys)."""


def _answers(parts: _Parts, found: Sequence[Row]) -> list[str]:
    lines, results = _bench_part(parts, found, "Training step against the answer-set size", BENCH_TRAIN,
                                 "answer_sizes", "lw-bench train --answers")
    if results is None:
        return lines
    rows, env = results["answer_sizes"], results.get("environment") or {}
    columns = [*(c for c in ANSWER_COLUMNS if c in rows[0]), *(c for c in rows[0] if c not in ANSWER_COLUMNS)]
    lines += [parts.figure("answers-scaling.png", partial(figures.answers_figure, results),
                           "training step time against the number of answers"), "",
              markdown_table(columns, [[r.get(c, "") for c in columns] for r in rows]), ""]
    largest = [r for r in rows if r["answers"] == rows[-1]["answers"]]
    parts.found.append(
        f"- **answer-set size** (lw-bench train --answers, {env.get('task', '?')}, {env.get('device', '?')}, "
        f"batch {results.get('batch', '?')}): a bridge step with {largest[0]['answers']} answers against one with "
        f"{rows[0]['answers']}, by answer rule: "
        + "; ".join(f"{r['rule']} {r['relative to first']:.2f}x ({r['s/step']:.2f} s)" for r in largest) + ".")
    return lines


def _limit(parts: _Parts, found: Sequence[Row]) -> list[str]:
    """lw-bench limit: batch-1 latency of the bridge path, its floor, the receiver reading the text and the
    text relay, and their ratios (same run)."""
    lines, results = _bench_part(parts, found, "The bridge path against its floor (batch 1)", BENCH_LIMIT,
                                 "ratios_p50", "lw-bench limit")
    if results is None:
        return lines
    env = results.get("environment") or {}
    rows = [[p["name"], *(round(p["latency_ms"][k], 1) for k in ("p50", "p90", "p99"))] for p in results["paths"]]
    ratios = results["ratios_p50"]
    lines += [markdown_table(["path", "p50 ms", "p90 ms", "p99 ms"], rows), "",
              markdown_table(["ratio of p50 latency", "value"], [[k, round(v, 3)] for k, v in ratios.items()]), ""]
    parts.found.append(f"- **bridge at its floor** (lw-bench limit, {env.get('task', 'rt-sentiment')}, batch 1): "
                       + "; ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + ".")
    return lines


SERVE_COLUMNS = ("target", "concurrency", "req/s", "p50 ms", "p90 ms", "p99 ms", "served / in process", "peak MiB",
                 "sent", "ok", "503", "failed")
"""lw-bench serve's columns, in the README's order."""


def _serving(parts: _Parts, found: Sequence[Row]) -> list[str]:
    lines, results = _bench_part(parts, found, "Serving under load", BENCH_SERVE, "rows", "lw-bench serve")
    if results is None:
        return lines
    rows, env = results["rows"], results.get("environment") or {}
    seen = list(dict.fromkeys(k for r in rows for k in r))
    columns = [*(c for c in SERVE_COLUMNS if c in seen), *(c for c in seen if c not in SERVE_COLUMNS)]
    lines += [markdown_table(columns, [["" if r.get(c) is None else r[c] for c in columns] for r in rows]), ""]
    served = [r for r in rows if "concurrency" in r]
    top = max((r["concurrency"] for r in served), default=None)
    at_top = [r for r in served if r["concurrency"] == top]
    in_process = next((r for r in rows if "concurrency" not in r), None)
    parts.found.append(
        f"- **serving** (lw-bench serve, {env.get('task', '?')}, {env.get('device', '?')}, {env.get('bridge', '?')} "
        f"bridge): at concurrency {top}, "
        + "; ".join(f"{r['target']} {r['req/s']} req/s (p99 {r.get('p99 ms', '–')} ms"
                    + (f", {r['served / in process']}x in process" if "served / in process" in r else "") + ")"
                    for r in at_top)
        + (f"; in process {in_process['req/s']} examples/s." if in_process else "."))
    return lines


def _ablations(parts: _Parts, suite: Suite, rows: Sequence[Row], tasks: Sequence[str],
               metric: Callable[[str | None], str]) -> list[str]:
    lines = []
    for plan_name, param in suite.ablations.items():
        plan = next(p for p in suite.plans if p.name == plan_name)
        order = list(dict.fromkeys(str(r.params.get(param)) for r in plan.runs))
        by = [f"params.{param}", "budget", "hardware"]
        grouped = group_rows([r for r in rows if r.record.plan == plan_name], by, metric, order)
        parts.use(grouped)
        plan_tasks = [t for t in tasks if t in {r.task for r in plan.runs}]
        lines += [f"### Ablations: {plan_name}, by {param}", "",
                  *tables_markdown(grouped, plan_tasks, by, heading="#### {task}")]
        parts.found += [line for t in plan_tasks if grouped.get(t) for line in ablation_findings(t, grouped[t])]
    return lines


def build_section(found: Sequence[Row], suite: Suite | None, *, base: Path, tasks: Sequence[str] | None = None,
                  group_by: Sequence[str] | None = None, figures_dir: Path, archive: Path | None = None,
                  command: str) -> Section:
    """The section's markdown, its figures and the records it used, from completed records `found`."""
    metric = with_generative(suite.metric if suite else (lambda task: DEFAULT_METRIC), [r.record for r in found],
                             DEFAULT_METRIC)
    group_by = list(group_by or DEFAULT_GROUP_BY)
    ablations = suite.ablations if suite else {}
    rows = [r for r in result_rows(found, metric) if tasks is None or r.record.task in tasks]
    tasks = list(tasks or (suite.tasks if suite else sorted({r.record.task for r in rows if r.record.task})))
    grouped = group_rows([r for r in rows if r.record.plan not in ablations], group_by, metric)
    parts = _Parts(relative_path(figures_dir, base))
    body = [*_task_tables(parts, grouped, tasks, group_by, metric), *_wire(parts, grouped, tasks),
            *_scaling(parts, found), *_limit(parts, found), *_answers(parts, found), *_serving(parts, found)]
    if suite:
        body += _ablations(parts, suite, rows, tasks, metric)
        body += ["### Not run yet", "", *_missing_lines(suite, found, base)]
        hashes = {run.plan_hash for plan in suite.plans for run in plan.runs}
        parts.used |= {r.record.id for r in found if r.record.plan_hash in hashes}
    used = [r for r in found if r.record.id in parts.used]
    records = len({r.record.id for r in used})
    where = f" committed under [{relative_path(archive, base)}]({relative_path(archive, base)})" if archive else ""
    head = [f"Generated by `{command}` from {records} run record{'s' * (records != 1)}{where}; "
            "rerun it rather than editing this text.", "",
            "### What we found", "", *(parts.found or ["Nothing yet: no completed runs."]), ""]
    return Section("\n".join([*head, *body]).rstrip() + "\n", parts.draw, used)
