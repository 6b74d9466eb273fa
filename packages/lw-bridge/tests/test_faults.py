"""`kill -9` in the middle of a checkpoint write: the previous checkpoint stays loadable and the resumed
run ends exactly where an uninterrupted one does."""

import json
import os
import signal
import subprocess
import sys

import pytest
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
