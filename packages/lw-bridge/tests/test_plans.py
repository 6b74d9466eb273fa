"""The ablation plan under ops/plans/: every ablation is a valid lw-train configuration."""

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
