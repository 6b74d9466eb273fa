"""lw-registry: run records, the run table and executors (local, SLURM). Never imports torch.

Importing the package is cheap (stdlib only): every lw CLI uses it to write its `run.json`.
The polars table (`load_table`) is imported on first use.
"""

from typing import Any

from lw_registry.failures import (
    ERROR_CATEGORIES,
    categorize_error,
    categorize_text,
    tail_lines,
)
from lw_registry.record import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    RECORD_NAME,
    STATUSES,
    RunRecord,
    edit_record,
    fail_run,
    finish_run,
    read_record,
    start_run,
    update_record,
    write_json_atomic,
    write_record,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ERROR_CATEGORIES",
    "FINAL_STATUSES",
    "RECORD_NAME",
    "STATUSES",
    "RunRecord",
    "categorize_error",
    "categorize_text",
    "edit_record",
    "fail_run",
    "finish_run",
    "load_table",
    "read_record",
    "start_run",
    "tail_lines",
    "update_record",
    "write_json_atomic",
    "write_record",
]


def __getattr__(name: str) -> Any:
    if name == "load_table":  # polars only when the table is wanted
        from lw_registry.table import load_table

        return load_table
    raise AttributeError(f"module 'lw_registry' has no attribute {name!r}")
