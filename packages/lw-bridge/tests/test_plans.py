"""The ablation plan under ops/plans/: every ablation is a valid lw-train configuration."""

import tomllib
from pathlib import Path

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


def test_the_cpu_slice_runs_the_same_runs_as_the_full_plan():
    full, cpu = (tomllib.loads((PLAN.parent / name).read_text()) for name in ("ablations.toml", "ablations-cpu.toml"))
    assert (cpu["name"], cpu["command"]) == (full["name"], full["command"])  # the same command is the same run
    assert set(cpu["params"]["ablation"]) <= set(full["params"]["ablation"])
    assert set(cpu["tasks"]) <= set(full["tasks"]) and set(cpu["seeds"]) <= set(full["seeds"])
