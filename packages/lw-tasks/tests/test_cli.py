"""`lw-tasks list / show / eval-zero-shot`, end to end on user files and a tiny model saved to a folder."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from lw_tasks.cli import main


@pytest.fixture
def reviews(tmp_path):
    data = [{"review": f"review {i} is {'great' if i % 2 else 'awful'}", "stars": "good" if i % 2 else "bad"} for i in range(40)]
    path = tmp_path / "reviews.csv"
    pl.DataFrame(data).write_csv(path)
    return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from lw_core.testing import tiny_llama

    lm = tiny_llama()
    folder = tmp_path_factory.mktemp("tiny-llama")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def test_list(capsys):
    main(["list"])
    out = capsys.readouterr().out
    assert "rt-sentiment" in out and "20ng-full" in out and "squad" in out and "64w" in out


def test_show_user_file(reviews, capsys):
    main(["show", str(reviews), "--text-column", "review", "--label-column", "stars"])
    out = capsys.readouterr().out
    assert "sizes: train 32, validation 4, test 4" in out
    assert "' good'" in out and "Answer:" in out and "majority-class rate" in out
    main(["show", str(reviews), "--text-column", "review", "--label-column", "stars", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["class_counts"]["test"] == {"bad": 2, "good": 2}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "no-such-task"], "error: unknown task 'no-such-task'; known: 20ng"),
        (["frobnicate"], "error: unknown command 'frobnicate'"),
        (["eval-zero-shot", "--task", "nope"], "error: unknown task 'nope'"),
        (["eval-zero-shot", "--eval-batch-size", "0"],
         "error: invalid ZeroShotConfig: eval_batch_size must be >= 1"),
    ],
)
def test_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_eval_zero_shot_is_a_run(reviews, tiny_model_dir, tmp_path, capsys, monkeypatch):
    # Adapted: `--calibration both` now records two runs named (and with metric names) as lw-baseline's
    # zero-shot@MODEL and zero-shot-calibrated@MODEL, instead of one run with `calibrated_*` metrics.
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    main(["eval-zero-shot", "--task", str(reviews), "--text-column", "review", "--label-column", "stars",
          "--receivers", str(tiny_model_dir), "--split", "validation", "--no-progress"])  # fmt: skip
    plain, calibrated_summary = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()[-2:]]
    assert plain["n"] == 4 and 0 <= plain["accuracy"] <= 1 and 0 <= calibrated_summary["accuracy"] <= 1
    run_dir, calibrated_dir = Path(plain["run_dir"]), Path(calibrated_summary["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "reviews" / f"zero-shot@{tiny_model_dir.name}"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["task"] == "reviews"
    assert record["method"] == f"zero-shot@{tiny_model_dir.name}"
    assert json.loads((calibrated_dir / "run.json").read_text())["method"] == f"zero-shot-calibrated@{tiny_model_dir.name}"
    assert record["metrics"]["accuracy"] == plain["accuracy"] and record["metrics"]["seconds_per_example"] >= 0
    metrics = json.loads((run_dir / "metrics_validation.json").read_text())
    calibrated = json.loads((calibrated_dir / "metrics_validation.json").read_text())
    assert metrics["calibration"] == "none" and calibrated["calibration"] == "contextual"
    assert len(metrics["confusion"]) == 2 and set(calibrated["calibration_offset"]) == {"bad", "good"}
    assert len((run_dir / "predictions_validation.jsonl").read_text().splitlines()) == 4
    assert (calibrated_dir / "predictions_validation.jsonl").is_file()
