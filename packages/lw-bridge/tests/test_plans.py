"""The plans under ops/plans/ that run lw-train: every ablation is a valid lw-train configuration, a CPU slice
runs what its full plan runs (or, for QA, its own shorter budget), the multiple-choice and QA plans."""

import dataclasses
import shlex
import tomllib
from pathlib import Path

import pytest
from lw_bridge.config import TrainConfig
from lw_core.config import parse_config

ROOT = Path(__file__).resolve().parents[3]
PLAN = ROOT / "ops" / "plans" / "ablations.toml"


def test_every_ablation_of_the_plan_is_a_valid_lw_train_config():
    plan = tomllib.loads(PLAN.read_text())
    names = plan["params"]["ablation"]
    assert len(names) == len(set(names)) and "default" in names
    assert {p.stem for p in (PLAN.parent / "ablations").glob("*.toml")} == set(names)
    configs = {}
    for name in names:
        config, _ = parse_config(TrainConfig, ["--config", str(PLAN.parent / "ablations" / f"{name}.toml"),
                                               "--task", "rt-sentiment", "--seed", "1"])
        configs[name] = config
    assert configs["default"] == TrainConfig(task="rt-sentiment", seed=1)
    for name, config in configs.items():  # one factor at a time: each differs from the default
        assert name == "default" or config != configs["default"], name
    assert configs["fusion"].receiver_reads_text and configs["layers-8-15-22"].sender_layers() == [8, 15, 22]


@pytest.mark.parametrize("full_name", ["ablations", "bridge", "mc"])
def test_a_cpu_slice_runs_the_same_runs_as_its_full_plan(full_name):
    full, cpu = (tomllib.loads((PLAN.parent / f"{name}.toml").read_text()) for name in (full_name, f"{full_name}-cpu"))
    assert cpu["name"] == full["name"]
    if "methods" in cpu:
        assert set(cpu["methods"]) <= set(full["methods"])
        assert all(cpu["command"][m] == full["command"][m] for m in cpu["methods"])  # a run is its command
    else:
        assert cpu["command"] == full["command"] and set(cpu["params"]["ablation"]) <= set(full["params"]["ablation"])
    assert set(cpu["tasks"]) <= set(full["tasks"]) and set(cpu["seeds"]) <= set(full["seeds"])


def test_the_multiple_choice_plan_uses_the_suite_plans_own_commands():
    """mc.toml's runs are named as the other suite plans name theirs: the bridge's and fusion's command is
    bridge.toml's, every baseline's the baseline plans' template."""
    mc, bridge = (tomllib.loads((PLAN.parent / f"{name}.toml").read_text()) for name in ("mc", "bridge"))
    baselines = tomllib.loads((ROOT / "packages" / "lw-baselines" / "plans" / "baselines.toml").read_text())
    for method in mc["methods"]:
        assert mc["command"][method] == bridge["command"].get(method, baselines["command"]), method
    assert {"bridge", "fusion", "zero-shot", "zero-shot-calibrated", "lora", "probe"} <= set(mc["methods"])


def _bridge_config(command: str, seed: int = 0) -> TrainConfig:
    """A plan's lw-train command (`{python} -m lw_bridge …`) as the TrainConfig it runs."""
    words = shlex.split(command.format(python="python", task="squad-olmes", seed=seed, run_dir="/tmp/run"))
    assert words[:3] == ["python", "-m", "lw_bridge"]
    return parse_config(TrainConfig, words[3:])[0]


def test_the_qa_plan_runs_the_three_layouts_with_their_controls_and_the_qa_baselines():
    """qa.toml: layouts (b) question-aware, (a) and (c) on squad-olmes, each scoring its controls (no
    --no-compare-zero-shot) and its message at three wire formats; the baselines by the baseline plans' template."""
    qa = tomllib.loads((PLAN.parent / "qa.toml").read_text())
    baselines = tomllib.loads((ROOT / "packages" / "lw-baselines" / "plans" / "baselines.toml").read_text())
    assert qa["tasks"] == ["squad-olmes"] and qa["seeds"] == [0, 1, 2]
    configs = {m: _bridge_config(qa["command"][m]) for m in ("layout-a", "layout-b", "layout-c")}
    for method, config in configs.items():
        assert config.compare_zero_shot and config.wire_formats == ["fp16", "int8", "int4"], method
    b = configs["layout-b"]
    assert b.receiver_reads_text and b.receiver_text_fields == ["question"] and b.sender_fields == "all"
    assert b.fusion_layout == "suffix" and not configs["layout-a"].receiver_reads_text
    assert configs["layout-c"].receivers == ["gemma3-270m", "smollm2-135m"]
    assert configs["layout-a"] == dataclasses.replace(configs["layout-c"], receivers=configs["layout-a"].receivers)
    for method in ("zero-shot", "lora", "text-relay-answer"):
        assert qa["command"][method] == baselines["command"], method


def test_the_qa_cpu_slice_is_layout_b_at_seed_0_on_a_shorter_budget():
    """qa-cpu.toml: layout (b)'s command with a budget for a developer session: its own runs (its own plan
    name), the full plan's configuration otherwise."""
    qa, cpu = (tomllib.loads((PLAN.parent / f"{name}.toml").read_text()) for name in ("qa", "qa-cpu"))
    assert cpu["name"] != qa["name"] and cpu["tasks"] == qa["tasks"] and cpu["seeds"] == [0]
    (method,) = cpu["methods"]
    full, sliced = _bridge_config(qa["command"]["layout-b"]), _bridge_config(cpu["command"][method])
    budget = {"steps", "eval_every", "max_validation_examples", "threads", "wire_formats"}
    assert {f.name for f in dataclasses.fields(TrainConfig)
            if getattr(full, f.name) != getattr(sliced, f.name)} <= budget | {"output_dir"}
    assert sliced.threads == 1 and sliced.steps < full.steps and sliced.compare_zero_shot


def test_the_suite_reports_the_qa_plans():
    suite = tomllib.loads((PLAN.parent / "suite.toml").read_text())
    assert {"qa.toml", "qa-cpu.toml"} <= set(suite["plans"]) and "squad-olmes" in suite["tasks"]
    assert suite["metrics"]["squad-olmes"] == "f1"
