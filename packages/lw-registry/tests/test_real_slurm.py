"""lw-registry against a real single-node SLURM (`.ci/slurm-up.sh`; run by `.ci/slurm-test.sh`).

Every scenario's plan is submitted at the start (module fixture), so they run at the same time; each
test then polls, with a deadline, for its scenario's end. The runs are `lw_registry.demo` (torch-free,
checkpoints every step, resumes). Skipped unless LW_SLURM_TESTS=1 and `sinfo` answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from lw_registry import read_record
from lw_registry.record import RunRecord
from lw_registry.testing import poll_until, run_cli, slurm_unavailable

pytestmark = pytest.mark.slurm

DEMO = "{python} -m lw_registry.demo --run-dir {run_dir} --task {task} --seed {seed}"
META = "$(touch PWNED) `touch PWNED2`; rm -rf / && echo 'q\"' > out | cat * ${HOME}"
LONG = "x" * 150


_REASON = slurm_unavailable()
if _REASON:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_REASON)]


def records(root: Path, plan: str) -> list[RunRecord]:
    return sorted((read_record(p.parent) for p in (root / plan).rglob("run.json")), key=lambda r: r.name)


class Campaign:
    """All scenarios, submitted at once."""

    def __init__(self, base: Path) -> None:
        self.base, self.root = base, base / "runs"
        self.work = base / "work"
        self.work.mkdir(parents=True)
        self.profile = base / "profile.toml"
        self.profile.write_text(
            'partition = "debug"\ntime = "00:10:00"\ngpus = 0\ncpus_per_task = 1\nmem = "200M"\n'
            f"max_parallel = 4\nsignal_seconds = 30\npython = {json.dumps(sys.executable)}\n"
            f"chdir = {json.dumps(str(self.work))}\n")
        self.plans: dict[str, Path] = {}
        self.job_ids: dict[str, list[str]] = {}
        self.max_running: dict[str, int] = {}
        self.settle_root = base / "settle-runs"

    def plan(self, name: str, **data: object) -> Path:
        path = self.base / f"{name}.json"
        # Each plan's own task name: runs with the same command would be one run (identity = command hash).
        path.write_text(json.dumps({"name": name, "tasks": [name], "seeds": [0], **data}))
        self.plans[name] = path
        return path

    def submit(self, name: str, root: Path | None = None) -> str:
        rc, out = run_cli(root or self.root, "submit", self.plans[name], "--backend", "slurm", "--profile",
                          self.profile)
        assert rc == 0, out
        found = re.search(r"array job\(s\) ([\d, ]+)", out)
        self.job_ids[name] = re.findall(r"\d+", found.group(1)) if found else []
        return out

    def running_tasks(self, name: str) -> int:
        out = subprocess.run(["squeue", "-h", "-t", "R", "-j", ",".join(self.job_ids[name]), "-o", "%i"],
                             capture_output=True, text=True, check=False)
        return len(out.stdout.split())


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Campaign:
    c = Campaign(tmp_path_factory.mktemp("slurm"))
    # The slow ones first: a requeue is held ~2 minutes before it may start again; TIMEOUT comes at ~70 s.
    c.plan("requeue", command=f"{DEMO} --steps 40 --step-seconds 1")
    c.plan("limit", command=f"{DEMO} --steps 1000 --step-seconds 1",
           slurm={"time": "00:01:00", "requeue": False, "signal_seconds": 0})
    c.plan("warned", command=f"{DEMO} --steps 1000 --step-seconds 1",
           slurm={"time": "00:01:00", "signal_seconds": 30, "max_requeues": 0})
    c.plan("cancel", command=f"{DEMO} --steps 1000 --step-seconds 1")
    c.plan("array", command=f"{DEMO} --steps 4 --step-seconds 2", seeds=[0, 1, 2, 3], slurm={"max_parallel": 2})
    c.plan("flaky", command=f"{DEMO} --fail-until-attempt 2")
    c.plan("meta", command=f"{DEMO} --method {{note}}", params={"note": [META]})
    c.plan("long", command=f"{DEMO} --method {{value}}", params={"value": [LONG + "-a", LONG + "-b"]})
    # max_parallel over a plan split into two arrays by max_array_size (issue 36, item 6).
    c.plan("split", command=f"{DEMO} --steps 3 --step-seconds 2", seeds=list(range(6)),
           slurm={"max_parallel": 2, "max_array_size": 4})
    # Exit codes: a command killed by SIGKILL, and one exiting 143 (item 8).
    c.plan("killed", command="sh -c 'echo {task} {seed} {run_dir}; echo lw-train: error: unrelated; kill -9 $$'")
    c.plan("term", command="sh -c 'echo {task} {seed} {run_dir}; exit 143'")
    # The job wrapper itself killed (kill -9) while its command runs (item 21).
    c.plan("lost", command=f"{DEMO} --steps 1000 --step-seconds 1")
    # The record completes while the job still runs; in a root of its own, nothing else is active (item 7).
    c.plan("settle", command=f"sh -c '{DEMO} --steps 1 && sleep 10'")
    for name in c.plans:
        c.submit(name, root=c.settle_root if name == "settle" else None)
    return c


def test_array_with_a_parallelism_limit(campaign):
    c = campaign
    script = Path(records(c.root, "array")[0].artifacts["sbatch"]).read_text()
    assert "#SBATCH --array=0-3%2" in script

    def done() -> bool:
        c.max_running["array"] = max(c.max_running.get("array", 0), c.running_tasks("array"))
        # The job writes `completed` before sacct stops saying RUNNING; a later poll settles slurm_state.
        return all(r.status == "completed" and r.slurm_state == "COMPLETED" for r in records(c.root, "array"))

    poll_until(c.root, "array plan completed and settled in sacct", done, 300, every=1)
    recs = records(c.root, "array")
    assert len(recs) == 4 and all(r.attempt == 1 and r.slurm_state == "COMPLETED" for r in recs)
    assert 1 <= c.max_running["array"] <= 2, c.max_running


def test_a_plan_run_twice_runs_nothing_twice(campaign):
    c = campaign
    poll_until(c.root, "array plan completed", lambda: all(r.status == "completed" for r in records(c.root, "array")),
               300)
    out = c.submit("array")
    assert "0 to run, 4 already completed" in out, out
    assert all(r.attempt == 1 for r in records(c.root, "array"))


def test_a_failing_run_and_rerun_failed(campaign):
    c = campaign
    poll_until(c.root, "flaky run failed", lambda: records(c.root, "flaky")[0].status == "failed", 240)
    rec = records(c.root, "flaky")[0]
    assert rec.error_category == "oom" and rec.attempt == 1, rec
    rc, out = run_cli(c.root, "--rerun-failed", "--plan", "flaky")
    assert rc == 0 and "resubmitted 1 run(s)" in out, out
    poll_until(c.root, "flaky run completed", lambda: records(c.root, "flaky")[0].status == "completed", 240)
    assert records(c.root, "flaky")[0].attempt == 2


def test_cancel(campaign):
    c = campaign
    poll_until(c.root, "long run started", lambda: records(c.root, "cancel")[0].status == "running", 240)
    rec = records(c.root, "cancel")[0]
    rc, out = run_cli(c.root, "--cancel", rec.id)
    assert rc == 0, out
    poll_until(c.root, "run cancelled", lambda: records(c.root, "cancel")[0].status == "cancelled", 120)
    assert records(c.root, "cancel")[0].slurm_state.startswith("CANCELLED")


def _checkpoint_step(run_dir: str) -> int:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((Path(run_dir) / "checkpoint.json").read_text())["step"]
    return 0


def test_scontrol_requeue_mid_training_resumes(campaign):
    c = campaign
    poll_until(c.root, "training past step 3", lambda: _checkpoint_step(records(c.root, "requeue")[0].run_dir) >= 3,
               240, every=1)
    rec = records(c.root, "requeue")[0]
    subprocess.run(["scontrol", "requeue", f"{rec.slurm_job_id}_{rec.slurm_array_task_id}"], check=True)
    # SLURM holds a requeued job ~2 minutes before it may start again.
    poll_until(c.root, "requeued run completed", lambda: records(c.root, "requeue")[0].status == "completed", 420)
    rec = records(c.root, "requeue")[0]
    assert rec.attempt == 2 and rec.metrics["resumed_from_step"] >= 3, rec
    assert "SIGTERM" in (Path(rec.run_dir) / "job.log").read_text()


@pytest.mark.parametrize("plan", ["limit", "warned"])
def test_a_time_limit_ends_failed_timeout(campaign, plan):
    """`limit`: SIGTERM at the limit, no warning; `warned`: USR1 before it, with no requeue left."""
    c = campaign
    poll_until(c.root, f"{plan}: time limit reached",
               lambda: records(c.root, plan)[0].status in ("failed", "completed", "cancelled"), 240)
    poll_until(c.root, f"{plan}: sacct settled", lambda: records(c.root, plan)[0].slurm_state not in
               ("PENDING", "RUNNING", None), 120)
    rec = records(c.root, plan)[0]
    assert (rec.status, rec.error_category) == ("failed", "timeout"), (rec.status, rec.error, rec.slurm_state)
    rc, out = run_cli(c.root, "--rerun-failed", "--plan", plan, "--max-attempts", "1")
    assert rc == 0 and "retry limit" in out  # not retried forever


def test_shell_metacharacters_pass_literally(campaign):
    c = campaign
    poll_until(c.root, "meta run completed", lambda: records(c.root, "meta")[0].status == "completed", 240)
    rec = records(c.root, "meta")[0]
    assert rec.method == META and rec.params == {"note": META}
    assert not list(c.work.glob("PWNED*")) and not (c.work / "out").exists()


def test_long_parameter_values_get_their_own_run_dirs(campaign):
    c = campaign
    poll_until(c.root, "long runs completed",
               lambda: [r.status for r in records(c.root, "long")] == ["completed"] * 2, 240)
    recs = records(c.root, "long")
    assert len({r.run_dir for r in recs}) == 2 and {r.method for r in recs} == {LONG + "-a", LONG + "-b"}
    assert all(r.attempt == 1 for r in recs)
    out = c.submit("long")
    assert "0 to run, 2 already completed" in out


def _sacct_exit(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "ExitCode"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip()


def _most_at_once(recs: list[RunRecord]) -> int:
    """The most runs whose [started_at, finished_at) overlap (whole seconds: never more than really ran)."""
    def at(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp()

    spans = [(at(r.started_at), at(r.finished_at)) for r in recs]
    return max(sum(start <= t < end for start, end in spans) for t, _ in spans)


def test_max_parallel_holds_over_the_arrays_of_one_plan(campaign):
    c = campaign
    assert len(c.job_ids["split"]) == 2, c.job_ids
    poll_until(c.root, "split plan completed",
               lambda: all(r.status == "completed" for r in records(c.root, "split")), 400)
    recs = records(c.root, "split")
    assert len(recs) == 6 and {r.slurm_job_id for r in recs} == set(c.job_ids["split"])
    assert _most_at_once(recs) == 2, [(r.started_at, r.finished_at) for r in recs]  # not 2 per array


@pytest.mark.parametrize(("plan", "exit_code", "sacct", "category"),
                         [("killed", 137, "0:9", "killed"), ("term", 143, "0:15", "other")])
def test_exit_codes_of_commands_ended_by_signals(campaign, plan, exit_code, sacct, category):
    c = campaign
    poll_until(c.root, f"{plan} run failed", lambda: records(c.root, plan)[0].status == "failed", 240)
    rec = records(c.root, plan)[0]
    assert (rec.exit_code, rec.error_category) == (exit_code, category), rec  # 128 + signal; not bad-config
    poll_until(c.root, f"{plan}: sacct settled", lambda: _sacct_exit(rec.slurm_job_id) == sacct, 60)


def test_poll_settles_slurm_state_once_nothing_is_active(campaign):
    root = campaign.settle_root
    seen = set()

    def completed() -> bool:
        rec = records(root, "settle")[0]
        seen.add((rec.status, rec.slurm_state))
        return rec.status == "completed"

    poll_until(root, "settle run completed", completed, 240, every=1)
    if ("completed", "COMPLETED") not in seen:
        assert records(root, "settle")[0].slurm_state == "RUNNING"  # the job still sleeps
    poll_until(root, "settle: slurm_state COMPLETED", lambda: records(root, "settle")[0].slurm_state == "COMPLETED",
               90)


def test_an_unreachable_controller_is_recorded_as_cluster(campaign, monkeypatch):
    c = campaign
    conf = c.base / "unreachable.conf"
    text = Path("/etc/slurm/slurm.conf").read_text() if Path("/etc/slurm/slurm.conf").is_file() else ""
    if "SlurmctldHost" not in text:
        pytest.skip("no /etc/slurm/slurm.conf to copy")
    conf.write_text(text + "\nSlurmctldPort=6999\n")  # nothing listens there
    c.plan("unreachable", command=f"{DEMO} --steps 1")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    rc, out = run_cli(c.root, "submit", c.plans["unreachable"], "--backend", "slurm", "--profile", c.profile)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert rc == 1 and len(errors) == 1 and "Unable to contact slurm controller" in errors[0], out
    rec = records(c.root, "unreachable")[0]
    assert (rec.status, rec.error_category) == ("failed", "cluster"), rec


def _pids_with(text: str) -> list[int]:
    """Processes whose command line holds `text`."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
    return pids


def test_a_killed_job_wrapper_is_recorded_killed(campaign):
    c = campaign
    poll_until(c.root, "lost: training past step 2", lambda: _checkpoint_step(records(c.root, "lost")[0].run_dir) >= 2,
               240, every=1)
    rec = records(c.root, "lost")[0]
    manifest = str(Path(rec.artifacts["sbatch"]).parent / "manifest.json")
    (wrapper,) = [pid for pid in _pids_with(manifest) if b"lw_registry.job" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(wrapper, signal.SIGKILL)
    poll_until(c.root, "lost: run failed", lambda: records(c.root, "lost")[0].status == "failed", 120)
    rec = records(c.root, "lost")[0]
    assert (rec.exit_code, rec.error_category) == (137, "killed") and "SIGKILL" in rec.error, rec
    poll_until(c.root, "lost: sacct says 0:9", lambda: _sacct_exit(rec.slurm_job_id) == "0:9", 60)
    deadline = time.monotonic() + 30  # its orphaned command does not train on unseen
    while _pids_with(rec.run_dir):
        assert time.monotonic() < deadline, _pids_with(rec.run_dir)
        time.sleep(1)
