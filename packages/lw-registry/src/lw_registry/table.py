"""The run table: every `run.json` under a runs root as one polars frame.

A parquet file in the root caches the records' text by (path, mtime, size); it is only a cache:
delete it (or let it go stale) and the next scan rebuilds it. A record that cannot be read is
reported by path in `Table.problems` and skipped — it never hides the other runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lw_registry.files import runs_root
from lw_registry.record import FILE_MODE, RECORD_NAME, STATUSES, RunRecord

CACHE_NAME = ".lw-registry-cache.parquet"
METRIC_PREFIX = "metrics."
_SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules"}

# The frame's fixed columns; metrics follow as `metrics.<name>` (Float64 when numeric).
BASE_SCHEMA: dict[str, Any] = {
    "id": pl.Utf8,
    "name": pl.Utf8,
    "status": pl.Utf8,
    "task": pl.Utf8,
    "method": pl.Utf8,
    "seed": pl.Int64,
    "params": pl.Utf8,
    "plan": pl.Utf8,
    "attempt": pl.Int64,
    "exit_code": pl.Int64,
    "error_category": pl.Utf8,
    "error": pl.Utf8,
    "created_at": pl.Utf8,
    "started_at": pl.Utf8,
    "finished_at": pl.Utf8,
    "updated_at": pl.Utf8,
    "host": pl.Utf8,
    "git_sha": pl.Utf8,
    "backend": pl.Utf8,
    "slurm_job_id": pl.Utf8,
    "slurm_array_task_id": pl.Utf8,
    "slurm_state": pl.Utf8,
    "config_hash": pl.Utf8,
    "plan_hash": pl.Utf8,
    "run_dir": pl.Utf8,
    "path": pl.Utf8,
}
_CACHE_SCHEMA = {"path": pl.Utf8, "mtime_ns": pl.Int64, "size": pl.Int64, "text": pl.Utf8}


def params_label(params: dict[str, Any] | None) -> str:
    """`{"k": 16, "lr": 0.001}` → `"k=16,lr=0.001"` (sorted; empty string for no params)."""
    return ",".join(f"{k}={params[k]}" for k in sorted(params or {}))


@dataclass
class Table:
    """Records read from a runs root: the frame, the records themselves, and what could not be read."""

    root: Path
    frame: pl.DataFrame
    records: list[RunRecord]
    problems: list[tuple[str, str]] = field(default_factory=list)

    def by_id(self) -> dict[str, RunRecord]:
        return {r.id: r for r in self.records}


def find_record_files(root: Path) -> list[Path]:
    """Every `run.json` under `root`.

    A run directory's own contents (checkpoints, caches) are not searched, nor hidden or venv folders,
    nor symlinked folders: on a shared filesystem with thousands of runs the scan stays cheap.
    """
    found: list[Path] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        if RECORD_NAME in filenames:
            found.append(Path(dirpath) / RECORD_NAME)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
    return found


def _read_cache(path: Path) -> dict[str, tuple[int, int, str]]:
    if not path.is_file():
        return {}
    try:
        frame = pl.read_parquet(path)
        return {p: (m, s, t) for p, m, s, t in frame.select(list(_CACHE_SCHEMA)).iter_rows()}
    except Exception:  # a broken cache is just a cold cache
        return {}


def _write_cache(path: Path, rows: list[tuple[str, int, int, str]]) -> None:
    with contextlib.suppress(OSError, pl.exceptions.ComputeError):  # polars' own error on a full disk
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            pl.DataFrame(rows, schema=_CACHE_SCHEMA, orient="row").write_parquet(tmp)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _scalar_metric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _row(record: RunRecord, path: Path) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, dtype in BASE_SCHEMA.items():
        value = getattr(record, key, None)
        if key == "params":
            value = params_label(record.params)
        elif key == "path":
            value = str(path)
        if dtype == pl.Int64 and not (isinstance(value, int) and not isinstance(value, bool)):
            value = int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else None
        elif dtype == pl.Utf8 and value is not None and not isinstance(value, str):
            value = str(value)
        row[key] = value
    for name, value in (record.metrics or {}).items():
        row[METRIC_PREFIX + str(name)] = _scalar_metric(value)
    return row


def load_table(root: str | Path | None = None, *, use_cache: bool = True) -> Table:
    """Scan all records under the runs root into a `Table` (newest first); paths are absolute."""
    root = runs_root(root).absolute()
    files = find_record_files(root)
    cache_path = root / CACHE_NAME
    cache = _read_cache(cache_path) if use_cache else {}
    fresh: list[tuple[str, int, int, str]] = []
    records: list[tuple[RunRecord, Path]] = []
    problems: list[tuple[str, str]] = []
    for path in files:
        key = str(path)
        try:
            st = path.stat()
            hit = cache.get(key)
            if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
                text = hit[2]
            else:
                text = path.read_text()
            record = RunRecord.from_dict(json.loads(text))
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            problems.append((key, f"{type(exc).__name__}: {exc}"))
            continue
        fresh.append((key, st.st_mtime_ns, st.st_size, text))
        records.append((record, path))
    if use_cache and root.is_dir() and {r[0]: r[1:] for r in fresh} != cache:
        _write_cache(cache_path, fresh)
    records.sort(key=lambda rp: (rp[0].created_at or "", rp[0].id), reverse=True)
    return Table(root=root, frame=to_frame(rp for rp in records), records=[r for r, _ in records],
                 problems=problems)


def to_frame(records: Iterable[tuple[RunRecord, Path] | RunRecord]) -> pl.DataFrame:
    rows = []
    for item in records:
        record, path = item if isinstance(item, tuple) else (item, Path(item.run_dir) / RECORD_NAME)
        rows.append(_row(record, path))
    metric_names = sorted({k for row in rows for k in row if k.startswith(METRIC_PREFIX)})
    schema = dict(BASE_SCHEMA) | {m: pl.Float64 for m in metric_names}
    return pl.DataFrame([{k: row.get(k) for k in schema} for row in rows], schema=schema, orient="row") \
        if rows else pl.DataFrame(schema=schema)


def metric_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(METRIC_PREFIX)]


def filter_runs(
    frame: pl.DataFrame,
    *,
    status: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    method: str | Sequence[str] | None = None,
    plan: str | Sequence[str] | None = None,
) -> pl.DataFrame:
    """Keep the rows whose columns match (a value or any of a list of values)."""
    for column, wanted in (("status", status), ("task", task), ("method", method), ("plan", plan)):
        if wanted is None:
            continue
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        frame = frame.filter(pl.col(column).is_in(values))
    return frame


def sort_runs(frame: pl.DataFrame, by: str = "created_at", descending: bool = True) -> pl.DataFrame:
    if by not in frame.columns and METRIC_PREFIX + by in frame.columns:
        by = METRIC_PREFIX + by
    if by not in frame.columns:
        raise KeyError(by)
    return frame.sort(by, descending=descending, nulls_last=True)


def status_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Runs per status, every status listed (zero when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in frame.group_by("status").len().iter_rows():
        counts[status] = n
    return counts


def summarize(
    frame: pl.DataFrame,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("task", "method", "params"),
) -> pl.DataFrame:
    """Group (by default task × method × params) and give mean, std and count over seeds per metric.

    Columns: the group keys, `n` (runs in the group), then `<metric>_mean`, `<metric>_std` per metric
    (metric names without the `metrics.` prefix). std is the sample std (ddof=1), null for one seed.
    """
    columns = [m if m.startswith(METRIC_PREFIX) else METRIC_PREFIX + m for m in metrics] if metrics \
        else metric_columns(frame)
    columns = [c for c in columns if c in frame.columns]
    aggs: list[pl.Expr] = [pl.len().alias("n")]
    for col in columns:
        short = col.removeprefix(METRIC_PREFIX)
        aggs += [pl.col(col).mean().alias(f"{short}_mean"), pl.col(col).std(ddof=1).alias(f"{short}_std")]
    keyed = frame.with_columns([pl.col(k).fill_null("") for k in by if frame.schema[k] == pl.Utf8])
    return keyed.group_by(list(by)).agg(aggs).sort(list(by))


def format_mean_std(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    no_spread = std is None or (isinstance(std, float) and math.isnan(std)) or std == 0
    if no_spread and float(mean).is_integer() and abs(mean) >= 1:
        return f"{int(mean):,}"  # counts (n, parameters) read as integers
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
