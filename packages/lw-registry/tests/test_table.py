import json

import polars as pl
import pytest
from lw_registry import finish_run, start_run
from lw_registry.table import CACHE_NAME, filter_runs, load_table, sort_runs, status_counts, summarize


def _make(root, name, task, method, seed, acc, status="completed"):
    run = root / name
    start_run(run, name=name, argv=["x"], config={"seed": seed}, task=task, method=method, seed=seed)
    if status == "completed":
        finish_run(run, metrics={"accuracy": acc, "note": "text metric"})
    return run


@pytest.fixture
def populated(tmp_path):
    root = tmp_path / "runs"
    for seed, acc in enumerate((0.5, 0.7)):
        _make(root, f"a-lora-{seed}", "sst2", "lora", seed, acc)
    _make(root, "a-zs-0", "sst2", "zero-shot", 0, 0.4)
    _make(root, "b-lora-0", "agnews", "lora", 0, None, status="running")
    return root


def test_empty_root_gives_typed_empty_frame(tmp_path):
    table = load_table(tmp_path / "missing")
    assert table.frame.height == 0 and "status" in table.frame.columns and table.problems == []
    assert set(status_counts(table.frame).values()) == {0}


def test_table_filters_sorts_and_summarizes(populated):
    table = load_table(populated)
    assert table.frame.height == 4 and status_counts(table.frame)["completed"] == 3
    assert table.frame.schema["metrics.accuracy"] == pl.Float64
    lora = filter_runs(table.frame, status="completed", method=["lora"])
    assert sorted(lora["seed"].to_list()) == [0, 1]
    assert sort_runs(table.frame, "accuracy")["metrics.accuracy"].to_list()[0] == 0.7
    summary = summarize(filter_runs(table.frame, status="completed"), ["accuracy"])
    row = summary.filter((pl.col("task") == "sst2") & (pl.col("method") == "lora")).row(0, named=True)
    assert row["n"] == 2 and row["accuracy_mean"] == pytest.approx(0.6)
    assert row["accuracy_std"] == pytest.approx(0.1414, abs=1e-3)


def test_corrupt_record_is_reported_and_skipped(populated):
    bad = populated / "broken" / "run.json"
    bad.parent.mkdir()
    bad.write_text('{"id": "x", "name": ')  # a torn write from some other tool
    wrong = populated / "wrong" / "run.json"
    wrong.parent.mkdir()
    wrong.write_text(json.dumps({"id": "y", "name": "n", "run_dir": "d", "status": "exploded"}))
    table = load_table(populated)
    assert table.frame.height == 4
    assert sorted(p for p, _ in table.problems) == [str(bad), str(wrong)]


def test_parquet_cache_is_only_a_cache(populated):
    first = load_table(populated).frame.sort("id")
    cache = populated / CACHE_NAME
    assert cache.is_file()
    cache.unlink()
    assert load_table(populated).frame.sort("id").equals(first)
    cache.write_bytes(b"not parquet")
    assert load_table(populated).frame.sort("id").equals(first)
    # A record changed after caching is read again, not served stale.
    finish_run(populated / "b-lora-0", metrics={"accuracy": 0.9})
    again = load_table(populated).frame
    assert again.filter(pl.col("name") == "b-lora-0")["metrics.accuracy"].to_list() == [0.9]


def test_format_mean_std_reads_counts_as_integers():
    from lw_registry.table import format_mean_std

    assert format_mean_std(1000.0, None, 3) == "1,000" and format_mean_std(1275, 0.0, 3) == "1,275"
    assert format_mean_std(0.5, None, 3) == "0.500" and format_mean_std(0.0, None, 3) == "0.000"
    assert format_mean_std(0.82, 0.02, 3) == "0.820 ± 0.020" and format_mean_std(None, None) == "–"
