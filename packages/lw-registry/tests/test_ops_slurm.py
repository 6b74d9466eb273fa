"""The shell in ops/slurm/: syntax, and run.sbatch's tee'd log, exit code and time-limit requeue."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lw_registry import read_record

REPO = Path(__file__).resolve().parents[3]
OPS = REPO / "ops" / "slurm"
pytestmark = pytest.mark.skipif(not (OPS / "run.sbatch").is_file(), reason="not in the lw repository")


@pytest.mark.parametrize("script", ["lib.sh", "run.sbatch", "sweep.sh", "watch.sh"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(OPS / script)], check=True)


def _demo(run_dir, *extra):
    return ["bash", str(OPS / "run.sbatch"), str(run_dir), sys.executable, "-m", "lw_registry.demo",
            "--run-dir", str(run_dir), *extra]


def test_run_sbatch_runs_a_command_with_a_timestamped_log(tmp_path):
    run_dir = tmp_path / "runs" / "one"
    out = subprocess.run(_demo(run_dir, "--steps", "2"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    log = (run_dir / "job.log").read_text().splitlines()
    assert all(line[:4].isdigit() and line[10] == "T" for line in log)
    assert "[lw] exit code 0" in log[-1] and read_record(run_dir).status == "completed"
    bad = subprocess.run(["bash", str(OPS / "run.sbatch"), str(tmp_path / "two"), "false"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1


def test_run_sbatch_checkpoints_and_requeues_before_the_time_limit(tmp_path, cluster):
    run_dir = tmp_path / "runs" / "long"
    env = dict(os.environ) | cluster.env() | {"SLURM_JOB_ID": "77", "SLURM_SUBMIT_DIR": str(REPO)}
    proc = subprocess.Popen(_demo(run_dir, "--steps", "40", "--step-seconds", "0.05"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (run_dir / "checkpoint.json").is_file():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@120 does
    assert proc.wait(timeout=30) == 143
    time.sleep(0.2)  # the tee'd log is flushed by a pipe reader
    log = (run_dir / "job.log").read_text()
    assert "time limit near" in log and "requeueing job 77" in log
    record = read_record(run_dir)
    assert record.status == "preempted" and json.loads((run_dir / "checkpoint.json").read_text())["step"] >= 1


CI_LIB = REPO / ".ci" / "slurm-lib.sh"


@pytest.mark.skipif(not CI_LIB.is_file(), reason="not in the lw repository")
def test_slurm_up_daemons_do_not_hold_the_callers_stdout(tmp_path):
    """`.ci/slurm-up.sh | tail` must return when the script ends: a daemon started by `detached` keeps
    neither the caller's stdout (a pipe here) nor any other file it inherited (an extra pipe)."""
    read_end, write_end = os.pipe()
    script = (f"source {CI_LIB}; set -euo pipefail; detached {tmp_path / 'daemon.log'} "
              "bash -c 'echo daemon up; exec sleep 60'; echo $!")
    start = time.monotonic()
    try:
        out = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, text=True, timeout=20,
                             pass_fds=(write_end,))
    finally:
        os.close(write_end)
    pid = int(out.stdout.split()[-1])
    try:
        assert out.returncode == 0 and time.monotonic() - start < 10
        deadline = time.monotonic() + 10
        while "daemon up" not in (tmp_path / "daemon.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"60"]
        assert os.getsid(pid) == pid  # its own session
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert not any(h.startswith("pipe:") for h in held), held
        assert os.read(read_end, 1) == b""  # the extra pipe's last writer is gone: EOF, not a hang
    finally:
        os.kill(pid, signal.SIGTERM)
        os.close(read_end)
