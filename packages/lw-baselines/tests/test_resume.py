"""A trained baseline resumes instead of starting over: `kill -9` after a checkpoint, SIGTERM
(preemption) and a non-finite loss, each followed by the same command, which ends exactly where an
uninterrupted run does."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lw_baselines.cli import main
from lw_baselines.common import METHODS
from lw_baselines.methods.finetune import LoraTrainable
from lw_baselines.methods.prompt_tuning import SoftPromptTrainable
from lw_baselines.runner import make_config, run_method
from lw_baselines.training import train_and_select
from lw_core.errors import LwError
from lw_core.testing import save_tiny_pair
from lw_tasks import ZeroShotScorer

OPTIONS = ["--steps", "40", "--eval-every", "5", "--batch-size", "4", "--lr", "1e-3", "3e-3", "--eval-batch-size", "8",
           "--device", "cpu", "--no-progress"]
TIMING = ("train_seconds", "eval_seconds", "seconds_per_example")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    models = save_tiny_pair(root / "models")
    rng = random.Random(0)
    with open(root / "toy.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(120):
            label = "positive" if i % 2 else "negative"
            word = rng.choice(["great", "fine", "lovely"] if i % 2 else ["awful", "dull", "weak"])
            writer.writerow([f"review {i}: the film was {word}", label])
    return {"root": root, "task": str(root / "toy.csv"), **models}


def argv(files, out: Path) -> list[str]:
    return ["lora", "--task", files["task"], "--sender", files["sender"], "--receivers", files["receiver"],
            "--output-dir", str(out), *OPTIONS]


def outcome(run: Path) -> dict:
    """Everything a run decided and measured, timings left out."""
    record = json.loads((run / "run.json").read_text())
    selected = json.loads((run / "selected.json").read_text())
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in selected.pop("history")]
    return {"status": record["status"], "metrics": {k: v for k, v in record["metrics"].items() if k not in TIMING},
            "selected": selected, "history": history,
            "predictions": (run / "predictions_test.jsonl").read_text(),
            "validation": (run / "predictions_validation.jsonl").read_text()}


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    os.environ.setdefault("LW_CACHE", str(files["root"] / "cache"))
    assert main(argv(files, out)) == 0
    return outcome(out)


def _state(run: Path) -> dict | None:
    """The progress in the checkpoint of the grid's furthest learning rate (each has its own folder)."""
    for folder in ("last-lr1", "last-lr0", "last"):
        try:
            return json.loads((run / "checkpoints" / folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
    return None


@pytest.mark.parametrize("when", ["first-checkpoint", "second-lr"])
def test_kill_9_after_a_checkpoint_and_the_same_command_resumes_to_the_same_result(files, reference, tmp_path, when):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", LW_CACHE=str(files["root"] / "cache"))
    command = [sys.executable, "-m", "lw_baselines", *argv(files, run)]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            state = _state(run)
            if state is not None and (when == "first-checkpoint" or state["lr_index"] == 1):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    killed_at = _state(run)
    assert killed_at is not None and json.loads((run / "run.json").read_text())["status"] == "running"
    assert killed_at["step"] < 40 or killed_at["lr_index"] == 0  # the grid was not finished

    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in (run / "log.txt").read_text()
    record = json.loads((run / "run.json").read_text())
    assert record["attempt"] == 2
    assert outcome(run) == reference  # exactly: same tensors, same RNG, same data order, same schedule


def _config(name, common, out, **extra):
    return make_config(METHODS.get(name), {**common, "steps": 8, "eval_every": 2, "batch_size": 4,
                                             "lr": [1e-3, 3e-3], "output_dir": str(out), **extra})


@pytest.mark.parametrize(("name", "trainable"), [("lora", LoraTrainable), ("dora", LoraTrainable),
                                                 ("prompt-tuning", SoftPromptTrainable)])
def test_sigterm_checkpoints_exits_143_recorded_preempted_and_resumes(name, trainable, common, task, models, tmp_path,
                                                                      monkeypatch):
    method = METHODS.get(name)
    straight = run_method(method, _config(name, common, tmp_path / "straight"), task=task, models=models)
    real_loss, calls = trainable.loss, {"n": 0}

    def loss_then_signal(self, task, examples):
        calls["n"] += 1
        if calls["n"] == 11:  # the third step of the second learning rate
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(self, task, examples)

    monkeypatch.setattr(trainable, "loss", loss_then_signal)
    config = _config(name, common, tmp_path / "pre")
    with pytest.raises(SystemExit) as exit_info:
        run_method(method, config, task=task, models=models)
    assert exit_info.value.code == 143
    assert json.loads((tmp_path / "pre" / "run.json").read_text())["status"] == "preempted"
    assert not (tmp_path / "pre" / "traceback.txt").exists()  # a signal, not a fault
    state = _state(tmp_path / "pre")
    assert (state["lr_index"], state["step"], len(state["history"])) == (1, 3, 5)
    monkeypatch.setattr(trainable, "loss", real_loss)
    resumed = run_method(method, config, task=task, models=models)
    assert "resuming from" in (tmp_path / "pre" / "log.txt").read_text()
    drop = (*TIMING, "run_dir")
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in straight.items() if k not in drop}
    assert outcome(tmp_path / "pre") == outcome(tmp_path / "straight")


def test_non_finite_loss_stops_with_one_line_error_and_keeps_the_last_good_checkpoint(common, task, models, tmp_path,
                                                                                      monkeypatch):
    real_loss, calls = LoraTrainable.loss, {"n": 0}

    def nan_at_step_5(self, task, examples):
        calls["n"] += 1
        loss = real_loss(self, task, examples)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(LoraTrainable, "loss", nan_at_step_5)
    with pytest.raises(LwError, match=r"^non-finite loss nan at step 5 \(lr 0.001\); the last good checkpoint is kept "
                                      r"at .*checkpoints/last-lr0; lower the learning rate$") as err:
        run_method(METHODS.get("lora"), _config("lora", common, tmp_path / "nan"), task=task, models=models)
    assert "\n" not in str(err.value)
    record = json.loads((tmp_path / "nan" / "run.json").read_text())
    assert record["status"] == "failed" and record["error_category"] == "nan"
    assert _state(tmp_path / "nan")["step"] == 4


def test_a_finished_grid_resumes_to_the_same_selection_without_training(receiver, common, task, tmp_path):
    config = _config("lora", common, tmp_path / "unused", lr=[1e-3, 1e-9])  # lr 1e-9 barely moves: lr 1e-3 wins
    made = []

    def make():
        made.append(LoraTrainable(receiver, config, dora=False))
        return made[-1]

    first = train_and_select(make, task, config, seed=0, batch_size=4, progress=False, checkpoint_dir=tmp_path / "ck")
    assert (first.lr, len(made)) == (1e-3, 2)
    again = train_and_select(make, task, config, seed=0, batch_size=4, progress=False, checkpoint_dir=tmp_path / "ck")
    assert len(made) == 4  # each lr's copy, restored from its last checkpoint with nothing left to train
    assert (again.lr, again.step, again.history) == (first.lr, first.step, first.history)
    assert again.validation.metrics == first.validation.metrics
    assert again.validation.predictions == first.validation.predictions
    assert torch.equal(again.validation.scores, first.validation.scores)
    assert again.state.keys() == first.state.keys() and all(torch.equal(again.state[k], first.state[k]) for k in first.state)
    examples = task.split("test")
    merged = [ZeroShotScorer(s.trainable.merged(s.state)).score(task, examples) for s in (first, again)]
    assert torch.equal(*merged)
