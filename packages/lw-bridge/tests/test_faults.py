"""`kill -9` in the middle of a checkpoint write: the previous checkpoint stays loadable and the resumed
run ends exactly where an uninterrupted one does."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from lw_bridge import trainer
from lw_bridge.config import TrainConfig
from lw_core.training import find_training_state
from safetensors.torch import load_file

CONFIG = dict(layer=2, steps=9, batch_size=8, eval_every=9, checkpoint_every=3, lr=3e-3, d_model=32, depth=1,
              heads=2, num_latents=4, num_soft_tokens=4, d_z=8, device="cpu", max_validation_examples=24,
              compare_zero_shot=False, wire_formats=[])

# Runs training in a fresh process that SIGKILLs itself inside its second checkpoint write (step 6).
KILLED = """
import json, os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from lw_bridge import trainer
from lw_bridge.config import TrainConfig
from lw_core import storage
where, config = sys.argv[1], TrainConfig(**json.loads(sys.argv[2]))
saves = {"n": 0}
real_write, real_replace = storage.write_bytes, os.replace

def write_bytes(path, data):  # the optimizer state is written once per checkpoint
    if Path(path).name == "optimizer.pt":
        saves["n"] += 1
        if saves["n"] == 2 and where == "mid-write":
            real_write(path, b"half an optimizer state")
            os.kill(os.getpid(), signal.SIGKILL)
    return real_write(path, data)

def replace(src, dst):
    real_replace(src, dst)
    if saves["n"] == 2 and where == "between-renames" and str(dst).endswith("last.old"):
        os.kill(os.getpid(), signal.SIGKILL)  # the old checkpoint moved aside, the new one not yet in place

storage.write_bytes, os.replace = write_bytes, replace
trainer.train(config)
"""


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("where", ["mid-write", "between-renames"])
def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one(env, model_dirs, toy_task_file, where):
    def config(out):
        return dict(CONFIG, task=toy_task_file, sender=model_dirs["sender"], receivers=[model_dirs["receiver"]],
                    output_dir=str(out))

    reference = trainer.train(TrainConfig(**config(env / "straight")))
    run = env / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLED, where, json.dumps(config(run))], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    kept = find_training_state(run / "checkpoints" / "last")
    assert kept is not None and json.loads((kept / "trainer_state.json").read_text())["step"] == 3

    resumed = trainer.train(TrainConfig(**config(run)))
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["attempt"] == 2
    assert "resuming from" in (run / "log.txt").read_text()
    assert resumed["accuracy"] == reference["accuracy"]
    a = load_file(env / "straight" / "bridge" / "bridge.safetensors")
    b = load_file(run / "bridge" / "bridge.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def _argv(model_dirs, task, out, *extra):
    return ["--task", task, "--sender", model_dirs["sender"], "--receivers", model_dirs["receiver"], "--layer", "2",
            "--steps", "4", "--batch-size", "8", "--eval-every", "4", "--checkpoint-every", "2", "--d-model", "32",
            "--depth", "1", "--heads", "2", "--num-latents", "4", "--num-soft-tokens", "4", "--d-z", "8",
            "--device", "cpu", "--max-validation-examples", "24", "--no-compare-zero-shot", "--output-dir", str(out),
            *extra]


def _fails_in_one_line(capfd, argv) -> str:
    from lw_bridge.cli import train_main

    with pytest.raises(SystemExit) as stopped:
        train_main(argv)
    assert stopped.value.code != 0
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


def test_a_run_dir_refuses_another_config_and_no_progress_shows_no_bars(env, model_dirs, toy_task_file, capfd):
    from lw_bridge.cli import train_main

    run = env / "run"
    train_main(_argv(model_dirs, toy_task_file, run, "--no-progress"))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s]" not in err and "ex/s]" not in err, err  # no bar at all
    kept = {name: (run / name).read_bytes() for name in ("config.json", "run.json", "metrics.json")}

    line = _fails_in_one_line(capfd, _argv(model_dirs, toy_task_file, run, "--no-progress", "--steps", "6"))
    assert line == (f"error: run directory {run} holds a run of another config (steps: 4 there, 6 here); "
                    "use another --output-dir, or the same options as that run")
    assert {name: (run / name).read_bytes() for name in kept} == kept  # nothing of that run rewritten


def test_a_disk_filling_during_a_checkpoint_is_one_line_and_the_same_command_resumes(
        env, model_dirs, toy_task_file, capfd, monkeypatch):
    import safetensors.torch

    real_save = safetensors.torch.save_file
    run = env / "run"

    def fills_up(tensors, path, *args, **kwargs):  # the second checkpoint (step 4) finds the disk full
        if "checkpoints/last.tmp" in str(path) and (run / "checkpoints" / "last").exists():
            raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device "
                                              "(os error 28)")
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", fills_up)
    line = _fails_in_one_line(capfd, _argv(model_dirs, toy_task_file, run, "--no-progress"))
    assert line.startswith(f"error: cannot write {run}/checkpoints/last.tmp/") and line.endswith(
        ": No space left on device")
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    kept = find_training_state(run / "checkpoints" / "last")
    assert kept is not None and json.loads((kept / "trainer_state.json").read_text())["step"] == 2
    assert not (run / "checkpoints" / "last.tmp").exists()

    monkeypatch.undo()
    from lw_bridge.cli import train_main

    train_main(_argv(model_dirs, toy_task_file, run, "--no-progress"))
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert "resuming from" in (run / "log.txt").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_device_cuda_without_a_gpu_is_refused_in_one_line(env, model_dirs, toy_task_file, capfd):
    line = _fails_in_one_line(capfd, _argv(model_dirs, toy_task_file, env / "run", "--device", "cuda"))
    assert "'cuda'" in line and "CUDA is not available" in line
    assert not (env / "run").exists()


def test_a_missing_relative_model_folder_is_no_such_folder(env, model_dirs, toy_task_file, capfd, monkeypatch):
    monkeypatch.chdir(env)
    (env / "models").mkdir()
    argv = _argv(model_dirs, toy_task_file, env / "run")
    argv[argv.index("--sender") + 1] = "models/sendr"
    line = _fails_in_one_line(capfd, argv)
    assert line.startswith(f"error: no such model folder {env / 'models' / 'sendr'}; known presets")
    assert not (env / "run").exists()
