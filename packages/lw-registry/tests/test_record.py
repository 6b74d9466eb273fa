import json

import pytest
from lw_registry import (
    RunRecord,
    categorize_error,
    fail_run,
    finish_run,
    read_record,
    start_run,
    update_record,
)
from lw_registry.failures import categorize_text
from lw_registry.record import FILE_MODE


def test_lifecycle_running_completed(tmp_path):
    run = tmp_path / "r1"
    rec = start_run(run, name="demo", argv=["lw-train"], config={"a": 1}, task="t", method="m", seed=0)
    assert rec.status == "running" and rec.attempt == 1
    finish_run(run, metrics={"accuracy": 0.9}, artifacts={"metrics": "metrics.json"})
    rec = read_record(run)
    assert rec.status == "completed" and rec.metrics == {"accuracy": 0.9} and rec.exit_code == 0
    again = start_run(run, name="demo", argv=["lw-train"], config={"a": 1})
    assert again.attempt == 2 and again.id == rec.id


def test_failure_records_category(tmp_path):
    run = tmp_path / "r2"
    start_run(run, name="demo", argv=[], config={})
    fail_run(run, error="boom", category=categorize_error(FileNotFoundError("x")), log_tail="last line")
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "failed" and rec["error_category"] == "missing-file" and rec["log_tail"] == "last line"


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (RuntimeError("CUDA out of memory"), "oom"),
        (FloatingPointError("loss is NaN at step 3"), "nan"),
        (ImportError("no module x"), "import"),
        (TimeoutError(), "timeout"),
        (ValueError("bad lr"), "bad-config"),
        (RuntimeError("weird"), "other"),
    ],
)
def test_categorize(exc, category):
    assert categorize_error(exc) == category


def test_update_merges_metrics(tmp_path):
    run = tmp_path / "r3"
    start_run(run, name="demo", argv=[], config={})
    update_record(run, metrics={"a": 1})
    update_record(run, metrics={"b": 2})
    assert read_record(run).metrics == {"a": 1, "b": 2}


def test_executor_counted_attempt_is_not_counted_twice(tmp_path, monkeypatch):
    run = tmp_path / "r4"
    start_run(run, name="demo", argv=[], config={}, task="t", method="m", seed=1)
    monkeypatch.setenv("LW_ATTEMPT", "2")
    monkeypatch.setenv("LW_RUN_DIR", str(run))
    rec = start_run(run, name="demo", argv=[], config={})  # an lw CLI that knows no task/method/seed
    assert rec.attempt == 2 and (rec.task, rec.method, rec.seed) == ("t", "m", 1)
    monkeypatch.setenv("LW_RUN_DIR", str(tmp_path / "other"))
    assert start_run(run, name="demo", argv=[], config={}).attempt == 3


def test_from_dict_rejects_what_is_not_a_record():
    with pytest.raises(ValueError, match="missing or non-string"):
        RunRecord.from_dict({"id": 1})
    with pytest.raises(ValueError, match="unknown status"):
        RunRecord.from_dict({"id": "a", "name": "b", "run_dir": "c", "status": "done"})
    with pytest.raises(ValueError, match="JSON object"):
        RunRecord.from_dict([1, 2])


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", "oom"),
        ("slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2025 DUE TO TIME LIMIT ***", "timeout"),
        ("FloatingPointError: loss is NaN", "nan"),
        ("ModuleNotFoundError: No module named 'peft'", "import"),
        ("FileNotFoundError: [Errno 2] No such file or directory: 'x'", "missing-file"),
        ("lw-train: error: unknown task 'sst3'; known: sst2", "bad-config"),
        ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
         "cluster"),
        ("sacct: error: slurm_persist_conn_open_without_init: sacct did not answer in 120 s", "cluster"),
        ("error: BrokenPipeError: [Errno 32] Broken pipe", "killed"),
        ("segfault", "other"),
        (None, "other"),
    ],
)
def test_categorize_text(text, category):
    assert categorize_text(text) == category


def test_records_are_readable_by_the_group(tmp_path):
    run = tmp_path / "r5"
    start_run(run, name="demo", argv=[], config={})
    assert (run / "run.json").stat().st_mode & 0o777 == FILE_MODE
