"""A fake SLURM for tests: `sbatch`, `sacct`, `squeue`, `scancel`, `scontrol` executables on PATH.

Job state lives in one JSON file (under a lock). Nothing runs by itself: a test plays the scheduler
with `Cluster.run_task` (start an array task, optionally signal it like a preemption or the
time-limit warning) and `Cluster.set_state` (e.g. OUT_OF_MEMORY, NODE_FAIL without running anything).
Stdlib only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

COMMANDS = ("sbatch", "sacct", "squeue", "scancel", "scontrol")
FINAL = {"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "CANCELLED"}


@contextlib.contextmanager
def _state(path: Path) -> Iterator[dict[str, Any]]:
    with open(str(path) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.is_file() and path.stat().st_size else {"next": 1000, "jobs": {}}
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)


def _array(spec: str) -> list[int]:
    spec = spec.split("%")[0]
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def sbatch(args: list[str], state: Path) -> int:
    if os.environ.get("FAKE_SBATCH_ERROR"):  # play a rejected submission
        print(f"sbatch: error: {os.environ['FAKE_SBATCH_ERROR']}", file=sys.stderr)
        return 1
    parsable = "--parsable" in args
    opts = [a for a in args if a.startswith("--") and a != "--parsable"]
    positional = [a for a in args if not a.startswith("--")]
    if not positional:
        print("sbatch: error: no script", file=sys.stderr)
        return 1
    script = Path(positional[0])
    directives = re.findall(r"^#SBATCH\s+(\S+)", script.read_text(), flags=re.M)
    options = {}
    for opt in directives + opts:
        key, _, value = opt.lstrip("-").partition("=")
        options[key] = value or True
    tasks = _array(str(options["array"])) if "array" in options else [0]
    with _state(state) as data:
        job_id = str(data["next"])
        data["next"] += 1
        data["jobs"][job_id] = {
            "script": str(script), "options": options, "cwd": os.getcwd(),
            "tasks": {str(t): {"state": "PENDING", "exit": "0:0", "pid": None, "restarts": 0} for t in tasks},
        }
    print(f"{job_id};fakecluster" if parsable else f"Submitted batch job {job_id}")
    return 0


def _task_lines(job_id: str, job: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows, pending = [], []
    for task, info in sorted(job["tasks"].items(), key=lambda kv: int(kv[0])):
        if info["state"] == "PENDING":
            pending.append(int(task))
        else:
            rows.append((f"{job_id}_{task}", info["state"], info["exit"]))
    if len(pending) == 1:
        rows.append((f"{job_id}_{pending[0]}", "PENDING", "0:0"))
    elif pending:  # like real sacct: not-yet-started array tasks are one line
        rows.append((f"{job_id}_[{','.join(map(str, pending))}]", "PENDING", "0:0"))
    return rows


def sacct(args: list[str], state: Path) -> int:
    ids = args[args.index("-j") + 1].split(",") if "-j" in args else None
    with _state(state) as data:
        calls = data.setdefault("sacct_calls", 0)
        data["sacct_calls"] = calls + 1
        for job_id, job in data["jobs"].items():
            if ids is None or job_id in ids:
                for row in _task_lines(job_id, job):
                    print("|".join(row))
                    if "-X" not in args:
                        print(f"{row[0]}.batch|{row[1]}|{row[2]}")
    return 0


def squeue(args: list[str], state: Path) -> int:
    if "-o" in args and args[args.index("-o") + 1] == "%e":  # end time of one running job (by SLURM_JOB_ID)
        wanted = args[args.index("-j") + 1]
        with _state(state) as data:
            for job_id, job in data["jobs"].items():
                for task, info in job["tasks"].items():
                    if str(int(job_id) + 1 + int(task)) == wanted:
                        end = info.get("end")
                        print(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(end)) if end else "Unknown")
                        return 0
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    with _state(state) as data:
        for job_id, job in data["jobs"].items():
            for task, info in job["tasks"].items():
                if info["state"] not in FINAL:
                    print(f"{job_id}_{task}|{info['state']}")
    return 0


def _targets(data: dict[str, Any], ref: str) -> list[tuple[str, str]]:
    job_id, _, task = ref.partition("_")
    job = data["jobs"].get(job_id)
    if job is None:
        return []
    return [(job_id, t) for t in job["tasks"] if not task or t == task]


def scancel(args: list[str], state: Path) -> int:
    with _state(state) as data:
        for ref in args:
            for job_id, task in _targets(data, ref):
                info = data["jobs"][job_id]["tasks"][task]
                if info["state"] in FINAL:
                    continue
                if info["pid"]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(info["pid"], signal.SIGTERM)
                info["state"], info["exit"] = f"CANCELLED by {os.getuid()}", "0:15"
    return 0


def scontrol(args: list[str], state: Path) -> int:
    if args[:1] != ["requeue"]:
        print(f"scontrol: unsupported {args}", file=sys.stderr)
        return 1
    with _state(state) as data:
        for job_id, task in _targets(data, args[1]):
            info = data["jobs"][job_id]["tasks"][task]
            info["state"], info["restarts"] = "PENDING", info["restarts"] + 1
            info["requeued_by_job"] = True
    return 0


def main(command: str) -> int:
    state = Path(os.environ["FAKE_SLURM_STATE"])
    return {"sbatch": sbatch, "sacct": sacct, "squeue": squeue, "scancel": scancel,
            "scontrol": scontrol}[command](sys.argv[1:], state)


class Cluster:
    """The test's handle on the fake cluster: install the commands, play the scheduler."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.state = root / "slurm-state.json"
        self.bin.mkdir(parents=True, exist_ok=True)
        here = Path(__file__).resolve().parent
        for name in COMMANDS:
            exe = self.bin / name
            exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(here)!r})\n"
                           f"import fake_slurm\nsys.exit(fake_slurm.main({name!r}))\n")
            exe.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_SLURM_STATE": str(self.state)}

    def data(self) -> dict[str, Any]:
        with _state(self.state) as data:
            return json.loads(json.dumps(data))

    def task(self, job_id: str, task: int | str) -> dict[str, Any]:
        return self.data()["jobs"][str(job_id)]["tasks"][str(task)]

    def set_state(self, job_id: str, task: int | str, state: str, exit_code: str = "0:0") -> None:
        with _state(self.state) as data:
            data["jobs"][str(job_id)]["tasks"][str(task)].update(state=state, exit=exit_code)

    def run_task(
        self,
        job_id: str,
        task: int | str,
        *,
        signal_when: Callable[[], bool] | None = None,
        signum: int = signal.SIGTERM,
        preempted: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
        time_limit_in: float | None = None,
    ) -> int:
        """Run one array task to its end like slurmd would; signal it once `signal_when()` is true.

        time_limit_in: the job's time limit ends this many seconds after it starts (what `squeue -o %e`
        reports); a signal sent then plays SLURM's SIGTERM at the limit, and the task ends TIMEOUT.
        """
        job_id, task = str(job_id), str(task)
        with _state(self.state) as data:
            job = data["jobs"][job_id]
            kind, _, after = str(job["options"].get("dependency", "")).partition(":")
            if kind == "afterany" and not all(t["state"] in FINAL or t["state"].startswith("CANCELLED")
                                              for t in data["jobs"][after]["tasks"].values()):
                raise AssertionError(f"job {job_id} waits for job {after} to end (--dependency=afterany:{after})")
            info = job["tasks"][task]
            info["state"] = "RUNNING"
            info["end"] = time.time() + time_limit_in if time_limit_in is not None else None
            info.pop("requeued_by_job", None)
            script, cwd, options = job["script"], job["cwd"], job["options"]
        out = str(options.get("output", f"slurm-{job_id}_{task}.out")).replace("%A", job_id).replace("%a", task)
        run_env = dict(os.environ) | (env or {}) | self.env() | {
            "SLURM_JOB_ID": str(int(job_id) + 1 + int(task)), "SLURM_ARRAY_JOB_ID": job_id,
            "SLURM_ARRAY_TASK_ID": task, "SLURM_RESTART_COUNT": str(self.task(job_id, task)["restarts"]),
        }
        with open(out, "a") as log:
            proc = subprocess.Popen(["bash", script], cwd=cwd, env=run_env, stdout=log, stderr=subprocess.STDOUT)
        with _state(self.state) as data:
            data["jobs"][job_id]["tasks"][task]["pid"] = proc.pid
        deadline = time.monotonic() + timeout
        if signal_when is not None:
            while not signal_when():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"task {job_id}_{task} ended before the signal condition held")
                time.sleep(0.05)
            proc.send_signal(signum)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        with _state(self.state) as data:
            info = data["jobs"][job_id]["tasks"][task]
            info["pid"] = None
            if info["state"] == "RUNNING":  # not requeued / cancelled meanwhile
                if time_limit_in is not None and time.time() >= info["end"]:
                    info["state"], info["exit"] = "TIMEOUT", "0:15"
                elif preempted:
                    info["state"], info["exit"] = "PREEMPTED", "0:15"
                else:  # like sacct: a death by signal N is 0:N; an exit status keeps only its low 7 bits
                    info["state"], info["exit"] = ("COMPLETED", "0:0") if rc == 0 else \
                        ("FAILED", f"0:{-rc}" if rc < 0 else f"{rc & 0x7f}:0")
        return rc

    def requeue(self, job_id: str, task: int | str) -> None:
        """What SLURM does after preempting a --requeue job: the task is pending again."""
        with _state(self.state) as data:
            info = data["jobs"][str(job_id)]["tasks"][str(task)]
            info["state"], info["restarts"] = "PENDING", info["restarts"] + 1
