"""What `lw-registry --status / --list / --show / --compare` print: the run table as terminal text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lw_registry.orchestrate import short
from lw_registry.plan import describe
from lw_registry.record import STATUSES, RunRecord
from lw_registry.text_table import terminal_table

if TYPE_CHECKING:
    from lw_registry.table import Table

RUN_HEADERS = ("id", "status", "task", "method", "seed", "attempt", "updated", "metrics / error")


def text_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """The registry's terminal tables: aligned columns with a rule under the headers."""
    return terminal_table(headers, rows, rule=True)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def metrics_text(metrics: dict[str, Any], n: int = 3) -> str:
    parts = []
    for key, value in list(metrics.items())[:n]:
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    more = len(metrics) - n
    return " ".join(parts) + (f" (+{more})" if more > 0 else "")


def run_rows(records: Sequence[RunRecord]) -> list[list[Any]]:
    return [[r.id, r.status, r.task, r.method, r.seed, r.attempt, (r.updated_at or r.created_at or "")[:19],
             metrics_text(r.metrics) if r.status == "completed" else
             (f"[{r.error_category}] {short(r.error, 50)}" if r.error_category else "")]
            for r in records]


def status_text(table: Table, records: list[RunRecord], counts: dict[str, int], limit: int) -> str:
    """Counts per status, the latest `limit` runs (0: all) and the five most recent failures."""
    root = table.root.resolve()
    out = [f"runs root: {root}  ({len(table.records)} run{'s' * (len(table.records) != 1)}"
           + (f", {len(table.problems)} unreadable record(s) skipped" if table.problems else "") + ")", ""]
    out.append(text_table(("status", "runs"), [[s, counts[s]] for s in STATUSES] + [["total", len(records)]]))
    if not table.records:
        out += ["", f"no runs under {root} yet: `lw-registry submit PLAN` (see ops/slurm/plans/), or run any lw CLI "
                "with --output-dir inside it"]
        return "\n".join(out)
    limit = limit or len(records)
    out += ["", f"latest runs ({min(limit, len(records))} of {len(records)})", text_table(RUN_HEADERS,
                                                                                         run_rows(records[:limit]))]
    failures = [r for r in records if r.status in ("failed", "preempted")]
    failures.sort(key=lambda r: r.finished_at or r.updated_at or "", reverse=True)
    if failures:
        out += ["", f"recent failures ({min(5, len(failures))} of {len(failures)}; rerun with --rerun-failed)"]
        out.append(text_table(("id", "status", "category", "attempt", "finished", "name", "error"),
                              [[r.id, r.status, r.error_category, r.attempt, (r.finished_at or "")[:19], r.name,
                                short(r.error or _last_line(r.log_tail), 60)] for r in failures[:5]]))
    return "\n".join(out)


def show_text(record: RunRecord) -> str:
    """One run: its fields, params, metrics, artifacts, command and log tail."""
    data = record.to_dict()
    skip = {"metrics", "artifacts", "config", "log_tail", "argv", "command", "resume", "slurm", "env", "params"}
    out = [text_table(("field", "value"), [[k, v] for k, v in data.items() if k not in skip and v not in (None, "")])]
    if record.params:
        out.append(f"\nparams: {json.dumps(record.params, sort_keys=True)}")
    for title, value in (("metrics", record.metrics), ("artifacts", record.artifacts)):
        if value:
            out += [f"\n{title}", text_table(("name", "value"), sorted(value.items()))]
    command = record.command or record.argv
    if command:
        out.append(f"\ncommand: {describe(command)}")
    if record.log_tail:
        out.append("\nlog tail:\n" + "\n".join("  " + line for line in record.log_tail.splitlines()[-20:]))
    return "\n".join(out)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def compare_text(a: RunRecord, b: RunRecord) -> str:
    """Two runs side by side: their fields, the config keys that differ, metric deltas (b - a)."""
    fields = ("name", "status", "task", "method", "seed", "plan", "config_hash", "attempt", "exit_code",
              "error_category", "host", "git_sha", "slurm_job_id", "created_at", "finished_at")
    out = [text_table(("field", a.id, b.id), [[f, getattr(a, f), getattr(b, f)] for f in fields])]
    ca, cb = _flatten({"params": a.params, **a.config}), _flatten({"params": b.params, **b.config})
    diff = [[k, json.dumps(ca.get(k)), json.dumps(cb.get(k))] for k in sorted(set(ca) | set(cb))
            if ca.get(k) != cb.get(k)]
    out.append(f"\nconfig: {len(diff)} difference(s)")
    if diff:
        out.append(text_table(("key", a.id, b.id), diff))
    names = sorted(set(a.metrics) | set(b.metrics))
    if names:
        rows = []
        for name in names:
            va, vb = a.metrics.get(name), b.metrics.get(name)
            delta = (vb - va) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
            rows.append([name, va, vb, f"{delta:+.4g}" if delta is not None else ""])
        out += ["\nmetrics", text_table(("metric", a.id, b.id, "b - a"), rows)]
    return "\n".join(out)
