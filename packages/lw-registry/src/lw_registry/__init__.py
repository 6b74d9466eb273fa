"""lw-registry: run records, the run table and executors (local, SLURM). Never imports torch."""

from lw_registry.record import (
    ERROR_CATEGORIES,
    RECORD_NAME,
    STATUSES,
    RunRecord,
    categorize_error,
    fail_run,
    finish_run,
    read_record,
    start_run,
    update_record,
    write_json_atomic,
    write_record,
)

__all__ = [
    "ERROR_CATEGORIES",
    "RECORD_NAME",
    "STATUSES",
    "RunRecord",
    "categorize_error",
    "fail_run",
    "finish_run",
    "read_record",
    "start_run",
    "update_record",
    "write_json_atomic",
    "write_record",
]
