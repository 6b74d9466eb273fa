import json
import signal
from pathlib import Path

import pytest
from lw_registry import read_record
from lw_registry.slurm import apply_state, map_state
from lw_registry.slurm_profile import SlurmError, render_script, resolve_profile

DEMO = "{python} -m lw_registry.demo --task {task} --method {method} --seed {seed} --run-dir {run_dir}"
PROFILE = """account = "proj"
partition = "gpu"
time = "00:10:00"
gpus = 1
mem = "8G"
max_parallel = 2
signal_seconds = 60
env = {HF_HOME = "/scratch/my hf's"}
"""


def _records(root):
    return {r.method: r for r in (read_record(p.parent) for p in root.rglob("run.json"))}


def _ckpt_step(run_dir, at_least):
    def ready():
        path = Path(run_dir) / "checkpoint.json"
        try:
            return json.loads(path.read_text())["step"] >= at_least
        except (OSError, ValueError):
            return False

    return ready


@pytest.fixture
def submitted(root, tmp_path, cluster, run_cli):
    """Three runs submitted as one array job: one fine, one failing once (OOM), one long (to preempt)."""
    (tmp_path / "profile.toml").write_text(PROFILE)
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({
        "name": "cl", "tasks": ["t"], "seeds": [0], "methods": ["ok", "flaky", "long"],
        "command": {"ok": f"{DEMO} --steps 2", "flaky": f"{DEMO} --fail-until-attempt 2",
                    "long": f"{DEMO} --steps 20 --step-seconds 0.05"},
    }))
    rc, out, err = run_cli("submit", plan, "--backend", "slurm", "--profile", tmp_path / "profile.toml")
    assert rc == 0, err
    assert "submitted 3 run(s) as SLURM array job(s) 1000" in out
    return plan


def test_submit_renders_a_quoted_array_job(root, submitted, cluster, run_cli, tmp_path):
    job = cluster.data()["jobs"]["1000"]
    script = Path(job["script"]).read_text()
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@60",
                 "#SBATCH --account=proj", "#SBATCH --partition=gpu", "#SBATCH --gres=gpu:1", "#SBATCH --mem=8G",
                 "#SBATCH --time=00:10:00", "export HF_HOME='/scratch/my hf'\"'\"'s'"):
        assert line in script, line
    records = _records(root)
    assert {r.status for r in records.values()} == {"submitted"}
    assert sorted(r.slurm_array_task_id for r in records.values()) == ["0", "1", "2"]
    assert {r.slurm_job_id for r in records.values()} == {"1000"} and records["ok"].slurm["account"] == "proj"
    rc, out, _ = run_cli("submit", submitted, "--backend", "slurm", "--profile", tmp_path / "profile.toml")
    assert rc == 0 and "0 to run, 0 already completed, 3 active" in out  # never submitted twice


def test_submit_run_fail_preempt_requeue_rerun(root, submitted, cluster, run_cli):
    rc, out, _ = run_cli("--status")  # polls sacct: still pending
    assert "submitted  3" in out and cluster.data()["sacct_calls"] == 1
    cluster.set_state("1000", 0, "RUNNING")
    run_cli("--poll")
    assert _records(root)["ok"].status == "running" and cluster.data()["sacct_calls"] == 2

    assert cluster.run_task("1000", 0) == 0
    assert cluster.run_task("1000", 1) == 1
    long_dir = _records(root)["long"].run_dir
    cluster.run_task("1000", 2, signal_when=_ckpt_step(long_dir, 1), preempted=True)
    recs = _records(root)
    assert recs["ok"].status == "completed" and recs["ok"].attempt == 1 and recs["ok"].metrics["accuracy"] > 0
    assert recs["ok"].host and recs["ok"].slurm_job_id == "1000" and recs["ok"].slurm_array_task_id == "0"
    assert recs["flaky"].status == "failed" and recs["flaky"].error_category == "oom"
    assert recs["long"].status == "preempted" and recs["long"].error_category == "preempted"
    assert "SIGTERM" in (Path(long_dir) / "job.log").read_text()
    rc, out, _ = run_cli("--status")
    assert "completed  1" in out and "failed     1" in out and "preempted  1" in out and "oom" in out

    # SLURM requeues the preempted task (--requeue): it resumes from its checkpoint.
    cluster.requeue("1000", 2)
    run_cli("--poll")
    assert _records(root)["long"].status == "submitted"
    assert cluster.run_task("1000", 2) == 0
    long = _records(root)["long"]
    assert long.status == "completed" and long.attempt == 2 and long.metrics["resumed_from_step"] >= 1

    # The failed run is resubmitted (a new array job of one) and passes on its second attempt.
    rc, out, _ = run_cli("--rerun-failed")
    assert rc == 0 and "resubmitted 1 run(s) as SLURM job(s) 1001" in out
    assert _records(root)["flaky"].status == "submitted"
    assert cluster.run_task("1001", 0) == 0
    flaky = _records(root)["flaky"]
    assert flaky.status == "completed" and flaky.attempt == 2 and flaky.slurm_job_id == "1001"
    rc, out, _ = run_cli("--status")
    assert "completed  3" in out
    rc, out, _ = run_cli("submit", submitted, "--backend", "slurm")
    assert "0 to run, 3 already completed" in out


def test_time_limit_warning_checkpoints_and_requeues(root, submitted, cluster, run_cli):
    long_dir = _records(root)["long"].run_dir
    cluster.run_task("1000", 2, signal_when=_ckpt_step(long_dir, 1), signum=signal.SIGUSR1)
    assert cluster.task("1000", 2)["state"] == "PENDING"  # the job asked scontrol to requeue it
    assert _records(root)["long"].status == "preempted"
    run_cli("--poll")
    assert _records(root)["long"].status == "submitted"
    cluster.run_task("1000", 2)
    long = _records(root)["long"]
    assert long.status == "completed" and long.attempt == 2 and long.metrics["resumed_from_step"] >= 1


def test_states_only_sacct_knows(root, submitted, cluster, run_cli):
    cluster.set_state("1000", 0, "OUT_OF_MEMORY", "0:125")
    cluster.set_state("1000", 1, "TIMEOUT", "0:0")
    cluster.set_state("1000", 2, "NODE_FAIL", "0:0")
    run_cli("--poll")
    recs = _records(root)
    assert (recs["ok"].status, recs["ok"].error_category) == ("failed", "oom")
    assert (recs["flaky"].status, recs["flaky"].error_category) == ("failed", "timeout")
    assert (recs["long"].status, recs["long"].error_category) == ("preempted", "preempted")


def test_cancel(root, submitted, cluster, run_cli):
    rec = _records(root)["ok"]
    rc, out, _ = run_cli("--cancel", rec.id)
    assert rc == 0 and cluster.task("1000", 0)["state"].startswith("CANCELLED by")
    run_cli("--poll")
    assert _records(root)["ok"].status == "cancelled"
    rc, out, _ = run_cli("submit", submitted, "--backend", "slurm")
    assert "1 cancelled (--retry-cancelled to run them)" in out


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PENDING", ("submitted", None)), ("RUNNING", ("running", None)), ("COMPLETED", ("completed", None)),
        ("FAILED", ("failed", None)), ("TIMEOUT", ("failed", "timeout")), ("OUT_OF_MEMORY", ("failed", "oom")),
        ("NODE_FAIL", ("preempted", "preempted")), ("PREEMPTED", ("preempted", "preempted")),
        ("CANCELLED by 1234", ("cancelled", None)), ("REQUEUED", ("submitted", None)),
    ],
)
def test_state_map(state, expected):
    assert map_state(state) == expected


def test_job_state_never_undoes_what_the_job_wrote(tmp_path):
    from lw_registry import fail_run, finish_run, start_run

    run = tmp_path / "r"
    start_run(run, name="r", argv=[], config={})
    finish_run(run, metrics={"a": 1})
    assert apply_state(run, "FAILED", "1:0").status == "completed"
    start_run(run, name="r", argv=[], config={})
    fail_run(run, error="stopped", category="preempted", status="preempted")
    assert apply_state(run, "CANCELLED by 7").status == "cancelled"  # scancel sends SIGTERM first


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"account": "x\n#SBATCH --uid=0"}, "not allowed in an #SBATCH line"),
        ({"partition": "gpu debug"}, "not allowed in an #SBATCH line"),
        ({"colour": "red"}, "unknown SLURM profile key(s) colour"),
        ({"gpus": "two"}, "gpus must be a non-negative integer"),
        ({"sbatch_args": ["--x=1; rm -rf /"]}, "must look like --option[=value]"),
    ],
)
def test_profile_validation(overrides, message):
    with pytest.raises(SlurmError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        resolve_profile(None, overrides)


def test_script_quotes_every_argument(tmp_path):
    profile = resolve_profile(None, {"python": "/opt/my env/bin/python", "chdir": "/work/it's here",
                                     "env": {"A": "$(reboot)"}})
    script = render_script(profile, plan="p", manifest=tmp_path / "m.json", count=3, root=tmp_path,
                           log_dir=tmp_path)
    assert "exec '/opt/my env/bin/python' -m lw_registry.job" in script
    assert "cd '/work/it'\"'\"'s here' || exit 1" in script and "export A='$(reboot)'" in script
    with pytest.raises(SlurmError, match="#SBATCH"):
        render_script(profile, plan="p", manifest=tmp_path / "m.json", count=1, root=tmp_path,
                      log_dir=tmp_path / "with space")


def test_sigterm_at_the_time_limit_is_a_timeout_not_a_preemption(root, submitted, cluster, run_cli):
    long_dir = _records(root)["long"].run_dir
    # The limit is already reached when SLURM's SIGTERM comes (no USR1 warning in between).
    cluster.run_task("1000", 2, signal_when=_ckpt_step(long_dir, 1), time_limit_in=0)
    long = _records(root)["long"]
    assert (long.status, long.error_category) == ("failed", "timeout"), long.error
    assert cluster.task("1000", 2)["state"] == "TIMEOUT"
    run_cli("--poll")
    assert (_records(root)["long"].status, _records(root)["long"].error_category) == ("failed", "timeout")


def test_sacct_timeout_overrides_a_preempted_record(tmp_path):
    from lw_registry import fail_run, start_run

    run = tmp_path / "r"
    start_run(run, name="r", argv=[], config={})
    fail_run(run, error="stopped", category="preempted", status="preempted", exit_code=143)
    rec = apply_state(run, "TIMEOUT", "0:15")
    assert (rec.status, rec.error_category) == ("failed", "timeout")


def test_time_limit_warning_without_requeue_is_a_timeout(root, submitted, cluster, run_cli):
    manifest = Path(cluster.data()["jobs"]["1000"]["script"]).parent / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"max_requeues": 0}))
    long_dir = _records(root)["long"].run_dir
    cluster.run_task("1000", 2, signal_when=_ckpt_step(long_dir, 1), signum=signal.SIGUSR1)
    assert cluster.task("1000", 2)["state"] != "PENDING"  # not requeued
    assert (_records(root)["long"].status, _records(root)["long"].error_category) == ("failed", "timeout")


def test_a_wrapper_killed_by_a_signal_is_not_exit_zero(root, submitted, cluster, run_cli):
    cluster.set_state("1000", 0, "RUNNING")
    run_cli("--poll")
    cluster.set_state("1000", 0, "FAILED", "0:9")
    run_cli("--poll")
    rec = _records(root)["ok"]
    assert rec.status == "failed" and rec.exit_code == 128 + 9 and "SIGKILL" in rec.error


def test_settled_records_get_their_final_slurm_state_and_are_not_rewritten(root, submitted, cluster, run_cli):
    assert cluster.run_task("1000", 0) == 0
    long_dir = _records(root)["long"].run_dir
    cluster.run_task("1000", 2, signal_when=_ckpt_step(long_dir, 1), preempted=True)
    run_cli("--poll")
    recs = _records(root)
    assert (recs["ok"].status, recs["ok"].slurm_state) == ("completed", "COMPLETED")
    assert (recs["long"].status, recs["long"].slurm_state) == ("preempted", "PREEMPTED")
    before = (Path(long_dir) / "run.json").read_text()
    run_cli("--poll")
    assert (Path(long_dir) / "run.json").read_text() == before  # a settled preempted record is left as is


def test_a_rejected_sbatch_leaves_no_run_pending(root, tmp_path, cluster, run_cli, monkeypatch):
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"name": "rej", "seeds": [0, 1], "command": f"{DEMO} --steps 1",
                                "tasks": ["t"], "methods": ["m"]}))
    monkeypatch.setenv("FAKE_SBATCH_ERROR", "Invalid generic resource (gres) specification")
    rc, out, err = run_cli("submit", plan, "--backend", "slurm")
    assert rc != 0 and "Invalid generic resource" in err
    recs = [read_record(p.parent) for p in root.rglob("run.json")]
    assert len(recs) == 2 and {r.status for r in recs} == {"failed"}
    assert all("Invalid generic resource" in r.error for r in recs)
    monkeypatch.delenv("FAKE_SBATCH_ERROR")
    rc, out, err = run_cli("submit", plan, "--backend", "slurm")
    assert rc == 0 and {read_record(p.parent).status for p in root.rglob("run.json")} == {"submitted"}


def test_processes_run_the_command_under_torchrun(root, tmp_path, cluster, run_cli):
    from lw_registry.job import process_launcher

    assert process_launcher(1) == []
    assert process_launcher(2, "/py") == ["/py", "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                                          "--nproc_per_node=2", "--no-python"]
    (tmp_path / "profile.toml").write_text(PROFILE + "processes = 2\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"name": "ddp", "seeds": [0], "command": f"{DEMO} --steps 1",
                                "tasks": ["t"], "methods": ["m"]}))
    rc, out, err = run_cli("submit", plan, "--backend", "slurm", "--profile", tmp_path / "profile.toml")
    assert rc == 0, err
    manifest = Path(cluster.data()["jobs"]["1000"]["script"]).parent / "manifest.json"
    assert json.loads(manifest.read_text())["processes"] == 2


def test_run_one_puts_the_launcher_before_the_command(root, tmp_path):
    import sys

    from lw_registry.executor import run_one
    from lw_registry.plan import load_plan
    from lw_registry.prepare import register

    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"name": "l", "seeds": [0], "tasks": ["t"], "methods": ["m"],
                                "command": f"{DEMO} --steps 1"}))
    loaded = load_plan(plan)
    run_dir = register(loaded.runs[0], root / "l" / "r", plan=loaded, backend="slurm")
    outcome = run_one(run_dir, launcher=["env", "LW_LAUNCHED=yes"])
    assert outcome.status == "completed"
    log = (run_dir / "job.log").read_text()
    assert f"env LW_LAUNCHED=yes {sys.executable} -m lw_registry.demo" in log
