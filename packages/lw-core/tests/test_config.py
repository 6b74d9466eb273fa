"""The one CLI mechanism: dataclass → flags, `--config FILE`, subcommands, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from lw_core.config import Command, build_config, config_argv, parse_command, parse_config
from lw_core.errors import LwError
from lw_core.options import RuntimeOptions, TrainingOptions


@dataclass
class Demo(RuntimeOptions, TrainingOptions):
    name: str = field(default="x", metadata={"help": "a name", "positional": True})
    lrs: list[float] = field(default_factory=lambda: [0.1], metadata={"help": "a grid"})
    limit: int | None = field(default=None, metadata={"help": "optional"})


def test_flags_override_file_override_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\nlr: 0.5\nlrs: [0.01, 0.02]\nprogress: false\n")
    config, _ = parse_config(Demo, ["run1", "--config", str(path), "--lr", "0.25"])
    assert (config.name, config.steps, config.lr, config.lrs, config.progress) == ("run1", 7, 0.25, [0.01, 0.02], False)
    assert config.dtype == "auto" and config.batch_size == 32


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        (None, ".yaml", "config file not found"),
        ("steps: [1, 2\n", ".yaml", "is not valid"),
        ("steps = \n", ".toml", "is not valid"),
        ("{", ".json", "is not valid"),
        ("- 1\n- 2\n", ".yaml", "must hold a mapping"),
        ("steps: many\n", ".yaml", "steps: expected int, got 'many'"),
        ("steps: 2.5\n", ".yaml", "steps: expected int, got 2.5"),
        ("progress: 3\n", ".yaml", "progress: expected true or false"),
        ("lrs: 0.1\n", ".yaml", ""),
        ("steps: 0\n", ".yaml", "invalid Demo: steps must be >= 1"),
        ("stepz: 3\n", ".yaml", "unknown Demo field(s) stepz"),
        ("dtype: fp64\n", ".yaml", "dtype must be one of"),
    ],
)
def test_bad_config_file_is_one_lw_error(tmp_path, text, suffix, message):
    path = tmp_path / f"c{suffix}"
    if text is not None:
        path.write_text(text)
    if text == "lrs: 0.1\n":  # a scalar where a list is expected is not accepted silently
        with pytest.raises(LwError, match="lrs: expected a list"):
            parse_config(Demo, ["--config", str(path)])
        return
    with pytest.raises(LwError) as info:
        parse_config(Demo, ["--config", str(path)])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_text_values_are_converted_by_annotation():
    config = build_config(Demo, {"steps": "3", "lrs": "1e-4,1e-3", "limit": "none", "progress": "no"})
    assert (config.steps, config.lrs, config.limit, config.progress) == (3, [1e-4, 1e-3], None, False)


def test_groups_check_every_parent():
    with pytest.raises(LwError, match="eval_batch_size must be >= 1"):
        build_config(Demo, {"eval_batch_size": 0})
    with pytest.raises(LwError, match="warmup must be in"):
        build_config(Demo, {"warmup": 1.5})


def test_subcommands(tmp_path):
    @dataclass
    class Other:
        count: int = field(default=1, metadata={"help": "how many"})

    commands = {"demo": Command("the demo", Demo), "other": Command("another", Other)}
    name, config = parse_command("prog", "d", commands, ["other", "--count", "3"])
    assert name == "other" and config.count == 3
    path = tmp_path / "o.toml"
    path.write_text("count = 5\n")
    assert parse_command("prog", "d", commands, ["other", "--config", str(path)])[1].count == 5
    with pytest.raises(LwError, match="unknown command 'nope'; known: demo, other"):
        parse_command("prog", "d", commands, ["nope"])


def test_config_argv_rebuilds_the_config():
    config = build_config(Demo, {"name": "r", "steps": 5, "lrs": [0.3, 0.4], "progress": False, "limit": 2})
    argv = config_argv(config)
    assert parse_config(Demo, argv)[0] == config
    assert "--batch-size" not in argv  # defaults are left out
