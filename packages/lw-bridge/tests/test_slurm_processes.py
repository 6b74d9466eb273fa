"""lw-train as 2 CPU processes per run, submitted through a real SLURM (`.ci/slurm-test.sh`).

The profile's `processes = 2` makes the job run the command under `torchrun --standalone`; a
`scontrol requeue` mid-training stops both ranks (rank 0 checkpoints), SLURM starts the job again
after its ~2-minute hold, and the run resumes and completes with one record.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lw_registry import read_record
from lw_registry.testing import poll_until, run_cli, slurm_unavailable

pytestmark = pytest.mark.slurm


_REASON = slurm_unavailable()
if _REASON:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_REASON)]


def test_two_processes_per_run_on_slurm_requeue_and_resume(tmp_path, model_dirs, toy_task_file):
    root, work = tmp_path / "runs", tmp_path / "work"
    work.mkdir()
    profile = tmp_path / "profile.toml"
    profile.write_text(f'partition = "debug"\ntime = "00:15:00"\ngpus = 0\ncpus_per_task = 2\nmem = "1000M"\n'
                       f"processes = 2\npython = {json.dumps(sys.executable)}\nchdir = {json.dumps(str(work))}\n")
    command = ("{python} -m lw_bridge.cli --task " + toy_task_file + f" --sender {model_dirs['sender']}"
               f" --receivers {model_dirs['receiver']} --layer 2 --steps 60 --batch-size 8 --eval-every 30"
               " --checkpoint-every 2 --lr 3e-3 --d-model 32 --depth 1 --heads 2 --num-latents 4"
               " --num-soft-tokens 4 --d-z 8 --device cpu --max-validation-examples 24 --no-compare-zero-shot"
               " --wire-formats int4 --output-dir {run_dir}")
    plan = tmp_path / "ddp.json"
    plan.write_text(json.dumps({"name": "ddp", "command": command, "env": {
        "LW_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}}))
    rc, out = run_cli(root, "submit", plan, "--backend", "slurm", "--profile", profile)
    assert rc == 0, out
    run_dir = next(root.rglob("run.json")).parent
    script = Path(read_record(run_dir).artifacts["sbatch"]).parent / "manifest.json"
    assert json.loads(script.read_text())["processes"] == 2

    state = run_dir / "checkpoints" / "last" / "trainer_state.json"

    def step() -> int:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(state.read_text())["step"]
        return 0

    poll_until(root, "2-process training past step 4", lambda: step() >= 4, 400, every=1)
    rec = read_record(run_dir)
    assert rec.status == "running" and rec.attempt == 1
    subprocess.run(["scontrol", "requeue", f"{rec.slurm_job_id}_{rec.slurm_array_task_id}"], check=True)
    stopped_at = poll_until(root, "preempted after requeue", lambda: read_record(run_dir).status in
                          ("preempted", "submitted") and step(), 120)
    poll_until(root, "resumed run completed", lambda: read_record(run_dir).status == "completed", 600)

    rec = read_record(run_dir)
    assert rec.attempt == 2, rec
    records = list(root.rglob("run.json"))
    assert len(records) == 1  # one run, one record, written by rank 0 only
    log = (run_dir / "job.log").read_text()
    assert "torch.distributed.run" in log and "[rank 1] process 1 of 2" in log and "process 0 of 2" in log
    assert "resuming from" in log
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["step"] for h in history] == list(range(1, 61)) and stopped_at >= 4
