"""Faults at the SLURM edges (fake SLURM): the last poll after every run ended, arrays of one plan over
max_array_size, exit codes of commands and wrappers killed by signals, and the error categories of
a lost wrapper or controller."""

from __future__ import annotations

import json
from pathlib import Path

from lw_registry import read_record

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
