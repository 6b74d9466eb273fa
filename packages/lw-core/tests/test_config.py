"""The one CLI mechanism: dataclass → flags, `--config FILE`, subcommands, one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest
import torch
from lw_core.config import (
    ArgumentParser,
    Command,
    add_config_arguments,
    build_config,
    config_argv,
    parse_command,
    parse_config,
)
from lw_core.errors import LwError
from lw_core.options import ModelOptions, OptionGroup, RuntimeOptions, TrainingOptions, shared_field
from lw_core.run_dirs import identity_hash


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


@dataclass
class Shared(RuntimeOptions):
    """A config taking the model group field by field: one receiver behind `--receivers`, an old spelling."""

    receiver: str = shared_field(ModelOptions, "receivers", default="r0", one_value=True, aliases=["receiver"])


def test_a_shared_field_keeps_the_groups_flag_and_help():
    parser = ArgumentParser(prog="p")
    add_config_arguments(parser, Shared)
    (action,) = [a for a in parser._actions if a.dest == "receiver" and a.help != argparse.SUPPRESS]
    assert action.option_strings == ["--receivers"]
    assert action.help.startswith(dataclasses.fields(ModelOptions)[1].metadata["help"])
    assert "models" in [g.title for g in parser._action_groups if action in g._group_actions]


def test_one_value_behind_a_list_flag_and_the_old_spelling_warns_once(capsys):
    assert parse_config(Shared, ["--receivers", "m"])[0].receiver == "m"
    assert capsys.readouterr().err == ""
    assert parse_config(Shared, ["--receiver", "m", "--receiver", "n"], ArgumentParser(prog="p"))[0].receiver == "n"
    assert capsys.readouterr().err == "p: --receiver is deprecated; use --receivers\n"
    with pytest.raises(LwError, match="--receivers: this command takes exactly one value, got 2: a b"):
        parse_config(Shared, ["--receivers", "a", "b"])
    assert config_argv(build_config(Shared, {"receiver": "m"})) == ["--receivers", "m"]


def test_a_config_file_may_name_the_flag(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('receivers = ["m"]\n')
    assert parse_config(Shared, ["--config", str(path)])[0].receiver == "m"
    path.write_text('receiver = "n"\n')
    assert parse_config(Shared, ["--config", str(path)])[0].receiver == "n"


def test_threads_is_applied_when_parsed_and_changes_no_run_id():
    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    try:
        config, _ = parse_config(Shared, ["--threads", str(wanted)])
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
    assert identity_hash(config) == identity_hash(Shared())
    with pytest.raises(LwError, match="threads: must be at least 1, got 0"):
        parse_config(Shared, ["--threads", "0"])


@dataclass
class Window(OptionGroup):
    """A downstream group: lw-core learns its `--help` title and checks from the class itself."""

    help_title = "window options"
    at_least_one = ("width",)

    width: int = field(default=4, metadata={"help": "window width"})
    stride: int = field(default=2, metadata={"help": "window stride"})

    def check_options(self) -> None:
        if self.stride > self.width:
            raise ValueError(f"stride must be <= width, got {self.stride} > {self.width}")


@dataclass
class Windowed(Window, RuntimeOptions):
    at_least_one = ("count",)

    count: int = field(default=1, metadata={"help": "a count of the command's own"})


def test_a_group_names_its_own_help_title():
    parser = ArgumentParser(prog="p")
    add_config_arguments(parser, Windowed)
    titles = {a.dest: g.title for g in parser._action_groups for a in g._group_actions}
    assert titles["width"] == titles["stride"] == "window options"
    assert titles["threads"] == titles["dtype"] == titles["seed"] == "runtime options"
    assert titles["count"] == "options"  # the command's own


@pytest.mark.parametrize(("values", "message"), [
    ({"width": 0}, "width must be >= 1, got 0"),
    ({"count": 0}, "count must be >= 1, got 0"),
    ({"eval_batch_size": 0}, "eval_batch_size must be >= 1, got 0"),
    ({"stride": 9}, "stride must be <= width, got 9 > 4"),
    ({"dtype": "fp64"}, "dtype must be one of"),
])
def test_every_group_of_a_config_is_checked_once_side_by_side(values, message):
    with pytest.raises(LwError, match=f"invalid Windowed: {message}"):
        build_config(Windowed, values)
    assert [f.name for f in dataclasses.fields(Windowed)][:7] == [
        "threads", "device", "dtype", "eval_batch_size", "output_dir", "progress", "seed"]
