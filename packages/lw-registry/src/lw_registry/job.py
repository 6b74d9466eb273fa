"""Inside a SLURM array task: `python -m lw_registry.job MANIFEST INDEX` runs the run at INDEX.

The record is written straight to the shared runs root; output is tee'd, timestamped, into
`<run_dir>/job.log` and the job's own SLURM log. On SIGUSR1 (SLURM's warning before the time limit)
or SIGTERM (preemption, scancel, the time limit) the command gets SIGTERM so it can checkpoint; on
SIGUSR1 the task is requeued (if the manifest allows it and attempts are left) and resumes from its
checkpoint. A SIGTERM at the job's end time (read from `squeue` at the start) is the time limit: the
run is `failed/timeout`, not `preempted`. With the profile's `processes = N > 1` the command runs as
N ranks under `torchrun --standalone` (SIGTERM reaches every rank through it). The wrapper ends the
way its command did (`exit_like`): a command killed by signal N makes it die of signal N, so that
`sacct` reads `0:N`.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

from lw_registry.executor import run_one
from lw_registry.record import read_record
from lw_registry.slurm import SlurmError, _run


def job_time_limit_at() -> float | None:
    """When this SLURM job's time limit ends (epoch seconds), from `squeue`; None when unknown or unlimited."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        text = _run(["squeue", "-h", "-j", job, "-o", "%e"], "squeue").strip()
    except SlurmError as exc:
        print(f"lw-registry: cannot read the job's end time: {exc}", file=sys.stderr, flush=True)
        return None
    try:
        return time.mktime(time.strptime(text.splitlines()[0], "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, IndexError):
        return None  # "Unknown", "N/A": no time limit


def process_launcher(processes: int, python: str | None = None) -> list[str]:
    """The argv prefix that runs a command as `processes` ranks on this node (empty for one process).

    `torchrun --standalone` rendezvous on localhost with a free port, so concurrent jobs on one node do
    not collide; `--no-python` runs any command (an lw CLI, `python -m ...`). It comes from the job's
    python (the profile's), which must have torch: the run's command needs it anyway.
    """
    if processes <= 1:
        return []
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc_per_node={processes}", "--no-python"]


def requeue_self() -> bool:
    """Ask SLURM to requeue the current array task (called by the job wrapper on the time-limit warning)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if not job:
        return False
    target = f"{job}_{task}" if task and os.environ.get("SLURM_ARRAY_JOB_ID") else job
    try:
        _run(["scontrol", "requeue", target], "scontrol requeue")
    except SlurmError as exc:
        print(f"lw-registry: could not requeue {target}: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m lw_registry.job MANIFEST INDEX", file=sys.stderr)
        return 2
    manifest = json.loads(Path(args[0]).read_text())
    runs = manifest["runs"]
    index = int(args[1])
    if index >= len(runs):
        print(f"error: array index {index} out of range (manifest has {len(runs)} runs)", file=sys.stderr)
        return 2
    run_dir = Path(runs[index])

    def requeue() -> bool:
        record = read_record(run_dir)
        if not manifest.get("requeue", True) or record.attempt > int(manifest.get("max_requeues", 10)):
            print(f"lw-registry: not requeueing {run_dir} (attempt {record.attempt})", flush=True)
            return False
        return requeue_self()

    outcome = run_one(run_dir, echo=True, handle_signals=True, requeue=requeue, time_limit_at=job_time_limit_at(),
                      launcher=process_launcher(int(manifest.get("processes", 1))))
    print(f"lw-registry: run {run_dir} ended {outcome.status} (exit {outcome.exit_code})", flush=True)
    if outcome.status == "completed":
        return 0
    return outcome.exit_code if outcome.exit_code not in (None, 0) else 1


# Signals whose default action does not end a process: a wrapper cannot die "by" them.
_NOT_FATAL = {signal.SIGCHLD, signal.SIGCONT, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
              signal.SIGURG, signal.SIGWINCH}


def exit_like(code: int) -> NoReturn:
    """End the wrapper the way its command ended, so that sacct says what happened: exit 0-127 as is, and
    128 + N (a command killed by signal N, or one that exited like it, e.g. 143 after SIGTERM) by dying of
    signal N (sacct `0:N`). SLURM keeps only 7 bits of an exit status: a plain exit 143 reads `15:0`."""
    signum = code - 128
    if 0 < signum < signal.NSIG and signum not in _NOT_FATAL:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        sys.stdout.flush()
        sys.stderr.flush()
        if signum != signal.SIGKILL:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the signal is delivered before this returns
    sys.exit(code if 0 <= code <= 127 else 1)


if __name__ == "__main__":
    exit_like(main())
