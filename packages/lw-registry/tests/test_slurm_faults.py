"""Faults at the SLURM edges (fake SLURM): the last poll after every run ended, arrays of one plan over
max_array_size, exit codes of commands and wrappers killed by signals, and the error categories of
a lost wrapper or controller."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from lw_registry import categorize_error, read_record

DEMO = "{python} -m lw_registry.demo --task {task} --seed {seed} --run-dir {run_dir}"


def _submit(tmp_path, run_cli, name: str, seeds: list[int], command: str = f"{DEMO} --steps 1", **profile):
    (tmp_path / "profile.json").write_text(json.dumps({"gpus": 0, **profile}))
    plan = tmp_path / f"{name}.json"
    plan.write_text(json.dumps({"name": name, "tasks": ["t"], "seeds": seeds, "command": command}))
    rc, out, err = run_cli("submit", plan, "--backend", "slurm", "--profile", tmp_path / "profile.json")
    assert rc == 0, err
    return out


def _records(root: Path) -> list:
    return sorted((read_record(p.parent) for p in root.rglob("run.json")), key=lambda r: r.seed)


def test_poll_settles_slurm_state_after_nothing_is_active(root, tmp_path, cluster, run_cli):
    """The job writes `completed` while sacct still says RUNNING; once no run is active any more, the
    next --poll (and --status) must still ask sacct, or slurm_state stays RUNNING for good."""
    _submit(tmp_path, run_cli, "settle", [0])
    cluster.set_state("1000", 0, "RUNNING")
    run_cli("--poll")
    assert cluster.run_task("1000", 0) == 0
    cluster.set_state("1000", 0, "RUNNING")  # sacct lags the job by a few seconds
    run_cli("--poll")
    (rec,) = _records(root)
    assert (rec.status, rec.slurm_state) == ("completed", "RUNNING")
    cluster.set_state("1000", 0, "COMPLETED")
    rc, out, _ = run_cli("--poll")
    assert rc == 0 and "1 SLURM run(s) changed" in out
    (rec,) = _records(root)
    assert (rec.status, rec.slurm_state) == ("completed", "COMPLETED")
    calls = cluster.data()["sacct_calls"]
    run_cli("--status")
    assert cluster.data()["sacct_calls"] == calls  # settled for good: no more sacct calls


KILLED = "sh -c 'echo lw-train: error: an unrelated line; echo {task} {seed} {run_dir}; kill -9 $$'"


def test_a_command_killed_by_a_signal_is_128_plus_signal_locally(root, tmp_path, run_cli):
    plan = tmp_path / "killed.json"
    plan.write_text(json.dumps({"name": "killed", "tasks": ["t"], "seeds": [0], "command": KILLED}))
    rc, out, _ = run_cli("submit", plan)
    (rec,) = _records(root)
    assert rc == 1 and "failed [killed]" in out
    assert (rec.status, rec.exit_code, rec.error_category) == ("failed", 137, "killed")
    assert rec.error == "killed by SIGKILL (exit code 137)"
    assert "=== exit code 137 (killed by SIGKILL)" in (Path(rec.run_dir) / "job.log").read_text()


@pytest.mark.parametrize(("command", "wrapper_rc", "sacct", "exit_code"), [
    (KILLED, -9, "0:9", 137),                         # the wrapper dies of the command's signal: sacct 0:9
    ("sh -c 'echo {task} {seed} {run_dir}; exit 143'", -15, "0:15", 143),  # as after SIGTERM: 0:15, not 15:0
    ("sh -c 'echo {task} {seed} {run_dir}; exit 3'", 3, "3:0", 3),
])
def test_the_job_wrapper_ends_like_its_command(root, tmp_path, cluster, run_cli, command, wrapper_rc, sacct,
                                               exit_code):
    _submit(tmp_path, run_cli, "ends", [0], command=command)
    assert cluster.run_task("1000", 0) == wrapper_rc  # never sys.exit(-9): a status sacct would read as 119:0
    assert cluster.task("1000", 0)["exit"] == sacct
    run_cli("--poll")
    (rec,) = _records(root)
    assert (rec.status, rec.exit_code) == ("failed", exit_code)
    assert rec.error_category == ("killed" if wrapper_rc == -9 else "other")


def test_a_killed_wrapper_is_killed_not_bad_config(root, tmp_path, cluster, run_cli):
    """The wrapper itself dies (kill -9): sacct says FAILED 0:9; the record says so, with exit code 137,
    whatever `error:` line the log ends with. Its orphaned command dies of the broken pipe."""
    _submit(tmp_path, run_cli, "lost", [0], command=f"{DEMO} --steps 400 --step-seconds 0.05")
    (rec,) = _records(root)
    step = Path(rec.run_dir) / "checkpoint.json"
    cluster.run_task("1000", 0, signal_when=step.is_file, signum=signal.SIGKILL)
    with open(Path(rec.run_dir) / "job.log", "a") as log:
        log.write("lw-train: error: an unrelated line\n")
    run_cli("--poll")
    (rec,) = _records(root)
    assert (rec.status, rec.exit_code, rec.error_category) == ("failed", 137, "killed"), rec
    assert "killed by SIGKILL" in rec.error


def test_an_unreachable_controller_is_a_cluster_error(root, tmp_path, cluster, run_cli, monkeypatch):
    monkeypatch.setenv("FAKE_SBATCH_ERROR", "Batch job submission failed: Unable to contact slurm controller "
                                            "(connect failure)")
    plan = tmp_path / "down.json"
    plan.write_text(json.dumps({"name": "down", "tasks": ["t"], "seeds": [0], "command": f"{DEMO} --steps 1"}))
    rc, out, err = run_cli("submit", plan, "--backend", "slurm")
    assert rc == 1 and err.count("\n") == 1 and "Unable to contact slurm controller" in err
    (rec,) = _records(root)
    assert (rec.status, rec.error_category) == ("failed", "cluster")


@pytest.mark.parametrize(("exc", "category"), [(BrokenPipeError(32, "Broken pipe"), "killed"),
                                               (ValueError("bad lr"), "bad-config")])
def test_a_broken_pipe_is_killed(exc, category):
    assert categorize_error(exc) == category


def test_max_parallel_holds_for_a_plan_split_into_arrays(root, tmp_path, cluster, run_cli):
    out = _submit(tmp_path, run_cli, "split", list(range(6)), max_array_size=4, max_parallel=2)
    assert "as SLURM array job(s) 1000, 1001" in out
    first, second = cluster.data()["jobs"]["1000"], cluster.data()["jobs"]["1001"]
    assert (first["options"]["array"], second["options"]["array"]) == ("0-3%2", "0-1%2")
    assert "dependency" not in first["options"] and second["options"]["dependency"] == "afterany:1000"
    with pytest.raises(AssertionError, match="waits for job 1000"):
        cluster.run_task("1001", 0)  # the second array starts only once the first has ended
    for task in range(4):
        assert cluster.run_task("1000", task) == 0
    for task in range(2):
        assert cluster.run_task("1001", task) == 0
    run_cli("--poll")
    assert [r.status for r in _records(root)] == ["completed"] * 6


@pytest.mark.parametrize(("profile", "arrays"), [({"max_array_size": 4, "max_parallel": 8}, 2),
                                                 ({"max_array_size": 4, "max_parallel": 0}, 2),
                                                 ({"max_array_size": 8, "max_parallel": 2}, 1)])
def test_arrays_that_fit_max_parallel_are_not_chained(root, tmp_path, cluster, run_cli, profile, arrays):
    _submit(tmp_path, run_cli, "fits", list(range(6)), **profile)
    jobs = cluster.data()["jobs"]
    assert len(jobs) == arrays and not any("dependency" in job["options"] for job in jobs.values())
