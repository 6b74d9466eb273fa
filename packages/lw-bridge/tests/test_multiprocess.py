"""lw-train under `accelerate launch` with 2 CPU processes (gloo DDP) against one process, same global batch.

Each step's global batch of `batch_size` examples is split over the processes and DDP averages their
gradients, so the update is the one-process update up to float summation order. The anti-collapse term
is a statistic of the whole batch (pairwise across examples): the processes gather their soft tokens for
it (`lw_core.distributed.gather_rows`). It runs at its default weight with a floor above any diversity
the bridge reaches here, so it is active at every step; `history.json` logs the global batch's loss.
"""

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

# The all-reduced gradient equals the one-process gradient up to float summation order (its norm, logged
# each step, agrees to ~1e-4). AdamW's normalised update turns that noise on near-zero gradient components
# into steps of up to ~lr in either direction, so after 12 steps at lr 3e-3 a weight may differ by a few
# 1e-3 (measured: 8e-4, weights up to ~2 in size); a wrong split or schedule differs by far more. In fp32:
# bf16 (what `--dtype auto` picks on a CPU with AVX512-BF16) rounds the two runs apart by ~1e-2.
WEIGHT_TOLERANCE = 1e-2
GRAD_NORM_TOLERANCE = {"rel": 1e-3, "abs": 5e-4}


def _args(model_dirs, task, out) -> list[str]:
    return ["--task", task, "--sender", model_dirs["sender"], "--receivers", model_dirs["receiver"], "--layer", "2",
            "--steps", "12", "--batch-size", "8", "--eval-every", "6", "--checkpoint-every", "3", "--lr", "3e-3",
            "--d-model", "32", "--depth", "1", "--heads", "2", "--num-latents", "4", "--num-soft-tokens", "4",
            "--d-z", "8", "--device", "cpu", "--output-dir", str(out), "--max-validation-examples", "24",
            "--no-compare-zero-shot", "--wire-formats", "int4", "--diversity-floor", "1.5", "--dtype", "fp32"]


def _run(cmd, tmp_path, cache) -> subprocess.CompletedProcess:
    env = dict(os.environ, LW_RUNS=str(tmp_path / "runs"), LW_CACHE=str(cache), OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    for var in ("LW_ATTEMPT", "LW_RUN_DIR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(var, None)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_two_cpu_processes_match_one(tmp_path, model_dirs, toy_task_file):
    one, two = tmp_path / "one", tmp_path / "two"
    single = _run([sys.executable, "-m", "lw_bridge.cli", *_args(model_dirs, toy_task_file, one)], tmp_path,
                  tmp_path / "c1")
    # What the README documents: accelerate's torchrun-based launcher, gloo on CPU (`--device cpu`).
    launched = _run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                     "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                     "--main_process_port", _free_port(),
                     "-m", "lw_bridge.cli", *_args(model_dirs, toy_task_file, two)], tmp_path, tmp_path / "c2")
    output = launched.stdout + launched.stderr

    # Only rank 0 wrote the run: one record, one attempt, checkpoints and results present.
    record = json.loads((two / "run.json").read_text())
    assert record["status"] == "completed" and record["attempt"] == 1, record
    for name in ("checkpoints/last", "checkpoints/best/bridge.safetensors", "bridge/bridge.safetensors",
                 "metrics_test.json", "history.json"):
        assert (two / name).exists(), name
    assert "[rank 1] process 1 of 2" in output and "process 0 of 2" in output
    # Each split's sender states were computed once, by rank 0; rank 1 read them from the cache.
    def computed(text):
        return [line for line in text.splitlines() if "computing" in line and "sender states" in line]

    assert computed(output) and len(computed(output)) == len(computed(single.stdout + single.stderr))
    assert not any("[rank 1]" in line for line in computed(output))

    h1, h2 = (json.loads((d / "history.json").read_text()) for d in (one, two))
    assert [h["step"] for h in h2] == list(range(1, 13))
    assert all(h["diversity/0"] < 1.5 for h in h1)  # the anti-collapse term was active at every step
    for key in ("grad_norm", "loss", "ce/0", "diversity/0"):
        assert [h[key] for h in h2] == pytest.approx([h[key] for h in h1], **GRAD_NORM_TOLERANCE), key
    assert [h["lr"] for h in h2] == pytest.approx([h["lr"] for h in h1])  # one schedule step per global step
    a, b = load_file(one / "bridge" / "bridge.safetensors"), load_file(two / "bridge" / "bridge.safetensors")
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert diff < WEIGHT_TOLERANCE, diff
    m1, m2 = (json.loads((d / "run.json").read_text())["metrics"] for d in (one, two))
    assert m1["best_step"] == m2["best_step"]
    loss_diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(h1, h2, strict=True))
    norm_diff = max(abs(a["grad_norm"] - b["grad_norm"]) / a["grad_norm"] for a, b in zip(h1, h2, strict=True))
    print(f"max |w_1proc - w_2proc| = {diff:.2e}; max |loss_1proc - loss_2proc| = {loss_diff:.2e}; grad norms "
          f"up to {norm_diff:.2%} apart; test accuracy {m1['accuracy']:.4f} vs {m2['accuracy']:.4f}")


def test_a_launcher_that_started_one_of_two_processes_is_named(tmp_path, model_dirs, toy_task_file):
    """`accelerate launch --num_processes 2` without `--multi_gpu` starts one process on a CPU: lw-train
    says so at start instead of silently training alone."""
    args = _args(model_dirs, toy_task_file, tmp_path / "run")
    args[args.index("--steps") + 1] = "1"
    launched = _run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
                     "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                     "--main_process_port", _free_port(), "-m", "lw_bridge.cli", *args], tmp_path, tmp_path / "c")
    output = launched.stdout + launched.stderr
    assert "process 0 of 1" in output
    assert "1 process: accelerate launch was asked for several but started one; did you mean --multi_gpu?" in output


def test_single_process_hint_needs_the_launchers_signal():
    from lw_core.distributed import single_process_hint

    simple_launcher = {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert "did you mean --multi_gpu?" in single_process_hint(1, simple_launcher)
    assert single_process_hint(2, simple_launcher) is None  # it started them
    assert single_process_hint(1, {"ACCELERATE_USE_CPU": "False"}) is None  # --num_processes 1: no MASTER_PORT
    assert single_process_hint(1, {**simple_launcher, "WORLD_SIZE": "1"}) is None  # torchrun asked for one
    assert single_process_hint(1, {}) is None  # plain lw-train
