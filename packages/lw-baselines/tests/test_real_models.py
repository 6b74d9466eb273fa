"""The embedded pair on the embedded Rotten Tomatoes task (minutes on a CPU): `-m slow`."""

import json

import pytest
from lw_baselines.runner import run_suite

pytestmark = pytest.mark.slow


def test_cheap_methods_beat_chance_on_rt_sentiment(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path))
    values = {"task": "rt-sentiment", "max_train_examples": 400, "max_validation_examples": 100,
              "max_test_examples": 200, "progress": False}
    results = run_suite(["zero-shot-calibrated@sender", "probe", "token-budget"], values,
                        options=["probe.c_grid=0.01,0.1,1"], output_dir=tmp_path / "suite")
    by_method = {r["method"]: r for r in results}
    assert all(r["status"] == "completed" for r in results), results
    assert by_method["probe"]["accuracy"] > 0.65
    assert by_method["zero-shot-calibrated@smollm2-135m"]["accuracy"] > 0.6
    record = json.loads((tmp_path / "suite" / "probe" / "run.json").read_text())
    assert record["method"] == "probe" and record["metrics"]["trainable_params"] == 576 * 2 + 2
