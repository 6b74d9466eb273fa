import json
import subprocess
import sys
from pathlib import Path

import pytest
from lw_registry import read_record

DEMO = "{python} -m lw_registry.demo --task {task} --method {method} --seed {seed} --run-dir {run_dir}"
ONE = "tasks: [t]\nmethods: [m]\nseeds: [0]\n"


def _plan(tmp_path, text, name="plan.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_status_on_an_empty_root_is_a_clear_empty_table(root, run_cli):
    rc, out, err = run_cli("--status")
    assert rc == 0 and err == ""
    assert f"runs root: {root.resolve()}  (0 runs)" in out
    for status in ("pending", "submitted", "running", "completed", "failed", "preempted", "cancelled"):
        assert f"\n{status} " in out
    assert "no runs under" in out


def test_status_starts_without_torch(root):
    code = "import sys; from lw_registry import cli; cli.main(['--status']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_submit_local_plan_then_nothing_new(root, tmp_path, run_cli):
    plan = _plan(tmp_path, f"name: demo\ncommand: '{DEMO}'\ntasks: [sst2, agnews]\nmethods: [m]\n"
                           "seeds: [0, 1]\nconcurrency: 2\n")
    rc, out, _ = run_cli("submit", plan)
    assert rc == 0 and "4 to run" in out and "done: 4 completed" in out
    rc, out, _ = run_cli("--status")
    assert "completed  4" in out and "total      4" in out
    rc, out, _ = run_cli("submit", plan)
    assert rc == 0 and "0 to run, 4 already completed" in out and "done:" not in out
    records = [read_record(p.parent) for p in root.rglob("run.json")]
    assert len(records) == 4 and all(r.attempt == 1 and r.status == "completed" for r in records)
    assert all(r.metrics["accuracy"] > 0 and r.task in ("sst2", "agnews") and r.seed in (0, 1) for r in records)
    assert all((root / "demo").resolve() in Path(r.run_dir).parents for r in records)
    log = (Path(records[0].run_dir) / "job.log").read_text()
    assert "=== attempt 1" in log and log[:4].isdigit()  # tee'd, timestamped
    # The report: one table per task, mean ± std over the two seeds.
    rc, out, _ = run_cli("report", "--metric", "accuracy")
    assert rc == 0 and "### sst2" in out and "| m | 2 | " in out and " ± " in out


def test_non_lw_commands_are_settled_by_exit_code(root, tmp_path, run_cli):
    code = ("import sys; s=int(sys.argv[1]); "
            "print('ModuleNotFoundError: No module named foo' if s else 'fine'); sys.exit(3 if s else 0)")
    plan = _plan(tmp_path, json.dumps({"name": "raw", "command": f"{{python}} -c \"{code}\" {{seed}}",
                                       "seeds": [0, 1], "max_attempts": 2}))
    rc, out, _ = run_cli("submit", plan)
    assert rc == 1 and "1 completed, 1 failed" in out
    failed = next(read_record(p.parent) for p in root.rglob("run.json") if read_record(p.parent).seed == 1)
    assert failed.status == "failed" and failed.exit_code == 3 and failed.error_category == "import"
    assert "No module named foo" in failed.log_tail
    rc, out, _ = run_cli("--status")
    assert "recent failures" in out and "import" in out
    rc, out, _ = run_cli("--list", "failed")
    assert failed.id in out
    # Retry limit: attempt 2 is allowed, a third is not.
    rc, out, _ = run_cli("--rerun-failed")
    assert "1 failed/preempted run(s) to run again" in out and read_record(failed.run_dir).attempt == 2
    rc, out, _ = run_cli("--rerun-failed")
    assert "reached the retry limit" in out and read_record(failed.run_dir).attempt == 2
    rc, out, _ = run_cli("submit", plan)
    assert "1 already completed, 0 active, 1 over the retry limit" in out


def test_flaky_run_is_retried_in_place_and_resumes(root, tmp_path, run_cli):
    plan = _plan(tmp_path, f"name: flaky\ncommand: '{DEMO} --fail-until-attempt 2'\n{ONE}")
    rc, out, _ = run_cli("submit", plan)
    rec = read_record(next(root.rglob("run.json")).parent)
    assert rc == 1 and rec.status == "failed" and rec.error_category == "oom" and rec.attempt == 1
    rc, out, _ = run_cli("--rerun", rec.id[:12])
    again = read_record(rec.run_dir)
    assert rc == 0 and again.status == "completed" and again.attempt == 2 and again.id == rec.id
    rc, _, err = run_cli("--rerun", rec.id)
    assert rc == 2 and err.startswith("error: run") and "--force" in err


def test_timeout_is_a_failure_with_its_category(root, tmp_path, run_cli):
    plan = _plan(tmp_path, "name: slow\ncommand: '{python} -c \"import time; time.sleep(30)\"'\ntimeout: 0.5\n")
    rc, out, _ = run_cli("submit", plan)
    rec = read_record(next(root.rglob("run.json")).parent)
    assert rc == 1 and rec.status == "failed" and rec.error_category == "timeout"


def test_show_compare_and_json(root, tmp_path, run_cli):
    plan = _plan(tmp_path, f"name: two\ncommand: '{DEMO}'\ntasks: [t]\nmethods: [m]\nseeds: [0, 1]\n")
    run_cli("submit", plan)
    a, b = sorted((read_record(p.parent) for p in root.rglob("run.json")), key=lambda r: r.seed)
    rc, out, _ = run_cli("--show", a.id)
    assert rc == 0 and a.id in out and "accuracy" in out and "command:" in out and "-m lw_registry.demo" in out
    rc, out, _ = run_cli("--show", a.run_dir, "--json")
    assert json.loads(out)["id"] == a.id
    rc, out, _ = run_cli("--compare", a.id, b.id)
    assert rc == 0 and "config: " in out and "params" not in out.split("metrics")[0].split("config:")[0]
    assert "b - a" in out and "seed" in out


def test_a_corrupt_record_never_hides_the_others(root, tmp_path, run_cli):
    run_cli("submit", _plan(tmp_path, f"name: ok\ncommand: '{DEMO}'\ntasks: [t]\nmethods: [m]\nseeds: [0, 1]\n"))
    bad = root / "ok" / "zz-broken" / "run.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    rc, out, err = run_cli("--status")
    assert rc == 0 and "completed  2" in out and "1 unreadable record(s) skipped" in out
    assert f"warning: skipped unreadable record {bad}" in err
    rc, out, err = run_cli("report")
    assert rc == 0 and "| 2 |" in out and str(bad) in err
    # ...and submitting again neither crashes nor reruns the good ones.
    rc, out, _ = run_cli("submit", _plan(tmp_path, f"name: ok\ncommand: '{DEMO}'\ntasks: [t]\nmethods: [m]\nseeds: [0, 1]\n"))
    assert "2 already completed" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--list", "bogus"], "error: unknown status bogus; known: pending, submitted"),
        (["--show", "nope"], "error: unknown run id 'nope'"),
        (["submit", "missing.yaml"], "error: plan file not found: missing.yaml"),
        (["--compare", "a"], "error: argument --compare: expected 2 arguments"),
        (["submit", "bad.yaml"], "error: unknown plan key(s) comand"),
        (["--list", "all", "--sort", "colour"], "error: unknown sort column 'colour'"),
        (["--list", "all", "--limit", "-1"], "error: argument --limit: expected an integer >= 0, got '-1'"),
        (["--status", "--limit", "ten"], "error: argument --limit: expected an integer >= 0, got 'ten'"),
        (["report", "--digits", "-2"], "error: argument --digits: expected an integer >= 0, got '-2'"),
        (["submit", "bad.yaml", "--poll-seconds", "-5"], "error: argument --poll-seconds: expected a number"),
        (["--show", ""], "error: empty run id ''"),
    ],
)
def test_bad_input_is_one_line_exit_2(root, tmp_path, run_cli, args, message):
    (tmp_path / "bad.yaml").write_text("comand: echo\n")
    rc, out, err = run_cli(*args)
    assert rc == 2 and err.startswith(message) and err.count("\n") == 1, err


def test_unknown_id_lists_known_ones(root, tmp_path, run_cli):
    run_cli("submit", _plan(tmp_path, f"name: ok\ncommand: '{DEMO}'\n{ONE}"))
    rec = read_record(next(root.rglob("run.json")).parent)
    rc, _, err = run_cli("--show", "nope")
    assert rc == 2 and f"known: {rec.id}" in err


@pytest.mark.parametrize("action", ["--show", "--rerun", "--cancel", "--compare"])
def test_an_empty_run_id_is_an_error_even_with_one_run(root, tmp_path, run_cli, action):
    """`''` is a prefix of every id: it must not pick the only run, nor fall back to the status table."""
    run_cli("submit", _plan(tmp_path, f"name: ok\ncommand: '{DEMO}'\n{ONE}"))
    before = next(root.rglob("run.json")).read_text()
    rc, out, err = run_cli(action, "", *([""] if action == "--compare" else []))
    assert (rc, out) == (2, "") and err == "error: empty run id '': give a run id, a unique id prefix, a run dir " \
        "or a run name\n", err
    assert next(root.rglob("run.json")).read_text() == before


def test_dry_run_writes_nothing(root, tmp_path, run_cli):
    rc, out, _ = run_cli("submit", _plan(tmp_path, f"name: dry\ncommand: '{DEMO}'\ntasks: [t]\nmethods: [m]\nseeds: [0, 1, 2]\n"),
                         "--dry-run")
    assert rc == 0 and out.count("would run") == 3 and not list(root.rglob("run.json"))
