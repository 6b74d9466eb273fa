import pytest
from lw_registry.plan import PlanError, expand_plan, load_plan


def _plan(**extra):
    return {"name": "p", "command": "train --task {task} --method {method} --seed {seed} --out {run_dir}",
            "tasks": ["a", "b"], "methods": ["m"], "seeds": [0, 1, 2], **extra}


def test_grid_expands_and_hashes_are_stable():
    command = _plan()["command"] + " --k {k}"
    plan = expand_plan(_plan(params={"k": [8, 16]}, command=command))
    assert len(plan.runs) == 2 * 1 * 3 * 2
    assert len({r.plan_hash for r in plan.runs}) == len(plan.runs)
    again = expand_plan(_plan(params={"k": [8, 16]}, command=command, max_attempts=5))
    assert [r.plan_hash for r in again.runs] == [r.plan_hash for r in plan.runs]
    run = plan.runs[0]
    assert run.argv("/x/y") == ["train", "--task", "a", "--method", "m", "--seed", "0", "--out", "/x/y", "--k", "8"]
    assert run.params == {"k": 8} and run.name == "p/a/m/seed0/k=8"


def test_values_with_spaces_stay_one_argument_and_braces_escape():
    plan = expand_plan({"name": "q", "command": "echo {task} '{{literal}}' {note}", "tasks": ["two words"],
                        "params": {"note": ["a;rm -rf /"]}})
    assert plan.runs[0].argv("/r") == ["echo", "two words", "{literal}", "a;rm -rf /"]


def test_duplicate_grid_points_are_deduplicated():
    plan = expand_plan({"name": "d", "command": "echo {task} {k}", "tasks": ["a"], "params": {"k": [8, 8, 16]}})
    assert [r.params["k"] for r in plan.runs] == [8, 16]


def test_method_mapping_commands():
    plan = expand_plan({"name": "m", "tasks": ["t"], "methods": ["bridge", "lora"],
                        "command": {"bridge": "lw-train --task {task}", "lora": "lw-baseline lora --task {task}"}})
    assert [r.argv("/d")[0] for r in plan.runs] == ["lw-train", "lw-baseline"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "p", "command": "x", "colour": 1}, "unknown plan key(s) colour"),
        ({"name": "p"}, "'command' is required"),
        ({"name": "p", "command": "x {sed}", "seeds": [0]}, "unknown placeholder {sed}"),
        ({"name": "p", "command": "x", "seeds": "0"}, "'seeds' must be a non-empty list"),
        ({"name": "p", "command": "x", "seeds": [0, 0]}, "duplicates"),
        ({"name": "a b", "command": "x"}, "plan 'name' must be a simple name"),
        ({"name": "p", "command": {"m": "x"}, "methods": ["m", "n"]}, "no entry for method(s) ['n']"),
        ({"name": "p", "command": "x", "params": {"seed": [1]}}, "bad param name 'seed'"),
        ({"name": "p", "command": "x", "max_attempts": 0}, "must be >= 1"),
        ({"name": "p", "command": "x {seed}"}, "placeholder {seed} in command needs a 'seeds' list"),
        ({"name": "p", "command": "x --seed {seed} {run_dir}", "methods": ["a", "b"], "seeds": [0]},
         "runs p/a/seed0 and p/b/seed0 expand to the same command (x --seed 0 '{run_dir}')"),
        ({"name": "p", "command": {"a": "x {task}", "b": "x {task}"}, "methods": ["a", "b"], "tasks": ["t"]},
         "runs p/t/a and p/t/b expand to the same command (x t)"),
        ({"name": "p", "command": "x {task}", "tasks": ["t"], "seeds": [0, 1]}, "the same command is the same run"),
        ({"name": "p", "command": "x", "params": {"k": [1, 2]}}, "runs p/k=1 and p/k=2 expand to the same command"),
    ],
)
def test_bad_plans_are_one_line_errors(data, message):
    with pytest.raises(PlanError) as info:
        expand_plan(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_yaml_and_toml_plans(tmp_path):
    (tmp_path / "a.yaml").write_text("command: echo {task}\ntasks: [x, y]\n")
    (tmp_path / "b.toml").write_text('name = "bee"\ncommand = "echo {task}"\ntasks = ["x"]\n')
    assert load_plan(tmp_path / "a.yaml").name == "a" and len(load_plan(tmp_path / "a.yaml").runs) == 2
    assert load_plan(tmp_path / "b.toml").name == "bee"
    with pytest.raises(PlanError, match="plan file not found"):
        load_plan(tmp_path / "missing.yaml")
    (tmp_path / "c.yaml").write_text("command: [unclosed\n")
    with pytest.raises(PlanError, match=r"plan file .*c\.yaml is not valid: "):  # the shared read_mapping message
        load_plan(tmp_path / "c.yaml")


def test_long_values_sharing_a_prefix_get_distinct_run_dirs():
    long = "x" * 120
    plan = expand_plan({"name": "long", "command": "echo {v} {run_dir}", "params": {"v": [long + "a", long + "b"]}})
    slugs = [r.slug for r in plan.runs]
    assert len(set(slugs)) == 2, slugs
    for run in plan.runs:
        assert len(run.slug) <= 80 and run.slug.endswith(run.plan_hash[:8])
