import json

import pytest
from lw_registry import categorize_error, fail_run, finish_run, read_record, start_run, update_record


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
