"""Suites: `lw-registry submit SUITE` runs each plan in turn; a run two plans share (the same command)
runs once, and submitting again runs nothing; a bad suite is one line before anything runs."""

import pytest
from lw_registry.plan import PlanError
from lw_registry.suite import load_suite


def write_plan(path, text):
    path.write_text(text)
    return path


PLAN = """name = "{name}"
command = "{{python}} -c pass {{task}} {{seed}}"
tasks = ["t"]
seeds = {seeds}
"""


def test_submit_suite_runs_each_plan_once_and_reuses_completed_runs(root, tmp_path, run_cli):
    write_plan(tmp_path / "a.toml", PLAN.format(name="a", seeds=[0, 1]))
    write_plan(tmp_path / "b.toml", PLAN.format(name="b", seeds=[1, 2]))  # seed 1: the same command as a's
    suite = write_plan(tmp_path / "suite.toml", 'plans = ["a.toml", "b.toml"]\n')
    rc, out, _ = run_cli("submit", suite)
    assert rc == 0
    assert "plan a: 2 run(s) — 2 to run, 0 already completed" in out
    assert "plan b: 2 run(s) — 1 to run, 1 already completed" in out
    assert out.count("completed a/") == 2 and out.count("completed b/") == 1
    rc, out, _ = run_cli("submit", suite)
    assert rc == 0 and out.count("0 to run") == 2 and "completed a/" not in out
    assert len(list(root.rglob("run.json"))) == 3


def test_a_plan_file_is_a_suite_of_one(tmp_path):
    path = write_plan(tmp_path / "p.toml", PLAN.format(name="p", seeds=[0]))
    suite = load_suite(path)
    assert [p.name for p in suite.plans] == ["p"] and suite.tasks == ["t"] and suite.metric("t") == "accuracy"


@pytest.mark.parametrize(("text", "message"), [
    ('plans = []\n', "suite key 'plans' is empty"),
    ('plans = ["missing.toml"]\n', "missing.toml"),
    ('plans = ["a.toml"]\nablations = {zzz = "k"}\n', "names plan(s) zzz not in 'plans' (a)"),
    ('plans = ["a.toml"]\nmetrics = {t = 3}\n', "suite key 'metrics' must be a mapping of names to names"),
    ('plans = ["suite.toml"]\n', "is a suite; a suite lists plan files"),
])
def test_bad_suites_are_one_line_errors(root, tmp_path, run_cli, text, message):
    write_plan(tmp_path / "a.toml", PLAN.format(name="a", seeds=[0]))
    suite = write_plan(tmp_path / "suite.toml", text)
    with pytest.raises(PlanError, match="."):
        load_suite(suite)
    rc, out, err = run_cli("submit", suite)
    assert rc == 2 and message in err and err.count("\n") == 1 and "to run" not in out
