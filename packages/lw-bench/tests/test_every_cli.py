"""Every command line on one user CSV whose columns are not `text` / `label`, on tiny models:
`lw-train`, `lw-eval`, each `lw-baseline` method, `lw-tasks eval-zero-shot`, `lw-bench latency`."""

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from lw_baselines.cli import main as baseline_main
from lw_baselines.common import METHODS
from lw_bench.cli import main as bench_main
from lw_bridge.cli import eval_main, train_main
from lw_core.testing import save_tiny_pair
from lw_tasks.cli import main as tasks_main

torch.set_num_threads(1)

COLUMNS = ["--text-column", "review", "--label-column", "stars"]
# Each method's options that keep it fast on tiny models.
FAST = {
    "zero-shot": [], "zero-shot-calibrated": [], "text-relay-answer": [],
    "few-shot": ["--k", "2", "--draws", "1"],
    "lora": ["--steps", "2", "--eval-every", "1", "--batch-size", "4", "--lr", "1e-3"],
    "dora": ["--steps", "2", "--eval-every", "1", "--batch-size", "4", "--lr", "1e-3"],
    "prompt-tuning": ["--steps", "2", "--eval-every", "1", "--batch-size", "4", "--virtual-tokens", "2"],
    "text-relay": ["--max-new-tokens", "3", "--selection-examples", "4", "--instructions", "summary"],
    "token-budget": ["--budget-tokens", "3"],
    "probe": ["--layer", "2", "--c-grid", "1.0"],
    "probe-best-layer": ["--layers", "1", "2", "--c-grid", "1.0"],
    "ensemble": ["--weights", "0", "1"],
}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("every-cli")
    models = save_tiny_pair(root)
    rng = random.Random(0)
    data = root / "my_reviews.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "stars"])
        for i in range(60):
            stars = "5" if i % 2 else "1"
            word = rng.choice(["great", "lovely"] if stars == "5" else ["awful", "dull"])
            writer.writerow([i, f"review {i}: the film was {word}", stars])
    return root, models, str(data)


@pytest.fixture
def runs(setup, monkeypatch):
    root = setup[0]
    monkeypatch.setenv("LW_RUNS", str(root / "runs"))
    monkeypatch.setenv("LW_CACHE", str(root / "cache"))
    return root / "runs"


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_every_method_has_fast_options():
    assert set(FAST) == set(METHODS.names())


def test_lw_train_and_lw_eval(setup, runs, capsys):
    root, models, data = setup
    config = root / "train.yaml"
    config.write_text(f"task: {data}\nsender: {models['sender']}\nreceivers: [{models['receiver']}]\nlayer: 2\n"
                      "steps: 2\nbatch_size: 4\neval_every: 1\nd_model: 16\ndepth: 1\nheads: 2\nnum_latents: 2\n"
                      "num_soft_tokens: 2\nd_z: 4\ncompare_zero_shot: false\n")
    train_main(["--config", str(config), *COLUMNS, "--device", "cpu"])
    (run_dir,) = (runs / "my_reviews").glob("*/seed*")
    record = _record(run_dir)
    assert run_dir.parent.name == record["method"]  # runs/<task>/<the record's method>/
    assert record["status"] == "completed" and record["task"] == "my_reviews" and 0 <= record["metrics"]["accuracy"] <= 1
    env = json.loads((run_dir / "env.json").read_text())
    assert env["device"] == "cpu" and env["dtype"] in ("fp32", "bf16") and env["hardware"]
    assert env["train_budget"]["steps"] == 2 and env["train_budget"]["batch_size"] == 4
    capsys.readouterr()
    eval_main([str(run_dir), "--device", "cpu"])
    assert json.loads(capsys.readouterr().out)[models["receiver"]]["accuracy"] == record["metrics"]["accuracy"]


@pytest.mark.parametrize("method", sorted(FAST))
def test_lw_baseline(method, setup, runs, capsys):
    _, models, data = setup
    argv = [method, "--task", data, *COLUMNS, "--sender", models["sender"], "--receivers", models["receiver"],
            "--device", "cpu", "--dtype", "fp32", "--no-progress", "--max-validation-examples", "6", *FAST[method]]
    assert baseline_main(argv) == 0
    (run_dir,) = (runs / "my_reviews").glob(f"{method}*/seed0-*")
    record = _record(run_dir)
    assert record["status"] == "completed" and record["task"] == "my_reviews" and record["method"] == method
    assert run_dir.name == f"seed0-{record['config_hash']}"  # the directory's hash is the record's
    assert 0 <= record["metrics"]["accuracy"] <= 1
    env = json.loads((run_dir / "env.json").read_text())
    assert (env["device"], env["dtype"]) == ("cpu", "fp32")
    assert (run_dir / "log.txt").read_text().splitlines()[-1].split(": ", 1)[1].startswith("result: {")


def test_the_same_baseline_command_is_recognised_as_done(setup, monkeypatch, caplog):
    root, models, data = setup
    runs = root / "runs-again"
    monkeypatch.setenv("LW_RUNS", str(runs))
    argv = ["zero-shot", "--task", data, *COLUMNS, "--receivers", models["receiver"], "--device", "cpu",
            "--no-progress", "--max-validation-examples", "5"]
    baseline_main(argv)
    (run_dir,) = (runs / "my_reviews" / "zero-shot").glob("seed0-*")
    first = _record(run_dir)
    baseline_main(argv)
    assert _record(run_dir)["finished_at"] == first["finished_at"] and "already done" in caplog.text
    assert len(list((runs / "my_reviews" / "zero-shot").glob("seed0-*"))) == 1


def test_lw_tasks_eval_zero_shot(setup, runs, capsys):
    _, models, data = setup
    tasks_main(["eval-zero-shot", "--task", data, *COLUMNS, "--receivers", models["receiver"], "--device", "cpu",
                "--no-progress"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = _record(Path(summary["run_dir"]))
    assert record["status"] == "completed" and record["task"] == "my_reviews"
    assert Path(summary["run_dir"]).parent.parent == runs / "my_reviews"


def test_lw_bench_latency(setup, runs, capsys):
    _, models, data = setup
    bench_main(["latency", "--task", data, *COLUMNS, "--sender", models["sender"], "--receivers", models["receiver"],
                "--examples", "2", "--layer", "2", "--num-soft-tokens", "2", "--relay-tokens", "2",
                "--paths", "bridge", "direct", "text-relay", "--repeats", "1", "--warmup", "0", "--batch-sizes", "1",
                "--throughput-examples", "1", "--device", "cpu", "--no-progress"])
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: "))
    results = json.loads((run_dir / "results.json").read_text())
    assert [p["name"] for p in results["paths"]] == ["bridge", "bridge floor", "direct", "text relay (2 tokens)"]
    assert run_dir.parent.parent == runs / "my_reviews"


@pytest.mark.parametrize("text", [None, "steps: [1\n", "- a list\n", "task: [1, 2]\n"])
def test_a_bad_config_file_is_one_line_for_every_cli(text, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    calls = [(train_main, []), (eval_main, ["some-run"]), (baseline_main, ["lora"]),
             (tasks_main, ["eval-zero-shot"]), (bench_main, ["latency"])]
    for main, argv in calls:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--config", str(path)])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err, (main, err)
