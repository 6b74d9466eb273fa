"""One option vocabulary: every command line shows the shared groups (runtime, models, task, data budget)
with the same names, help text and defaults; old spellings still work and warn once; `--threads`
takes effect; run ids did not move when the options were unified."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch
from lw_baselines.cli import commands as baseline_commands
from lw_baselines.common import METHODS
from lw_bench.cli import COMMANDS as BENCH_COMMANDS
from lw_bench.suite import BenchConfig
from lw_bridge.cli import EvalConfig
from lw_bridge.config import TrainConfig
from lw_core.config import ArgumentParser, add_config_arguments, parse_command, parse_config
from lw_core.errors import LwError
from lw_core.options import ModelOptions, RuntimeOptions
from lw_core.run_dirs import identity_hash
from lw_serve.cli import ServeConfig
from lw_tasks import BudgetOptions, TaskOptions
from lw_tasks.cli import COMMANDS as TASK_COMMANDS
from lw_tasks.cli import ZeroShotConfig

SHARED_TITLES = {g.help_title for g in (RuntimeOptions, ModelOptions, TaskOptions, BudgetOptions)}

# Every dataclass-generated command line: (what the user types, its config).
CLIS = {
    "lw-train": TrainConfig,
    "lw-eval": EvalConfig,
    "lw-serve": ServeConfig,
    **{f"lw-baseline {name}": c.config for name, c in baseline_commands().items()},
    **{f"lw-bench {name}": c.config for name, c in BENCH_COMMANDS.items()},
    **{f"lw-tasks {name}": c.config for name, c in TASK_COMMANDS.items()},
}

# What each command computes with must take: (--threads everywhere a model runs; the device group where
# models load in the process; the model group where a command chooses models).
RUNTIME = ["--threads", "--device", "--dtype", "--eval-batch-size", "--output-dir", "--progress"]
REQUIRED = {
    "lw-train": [*RUNTIME, "--seed", "--sender", "--receivers", "--task", "--data-dir"],
    "lw-eval": [*RUNTIME, "--sender", "--receivers", "--data-dir"],
    "lw-serve": ["--threads", "--device", "--dtype"],
    "lw-baseline lora": [*RUNTIME, "--seed", "--sender", "--receivers", "--task", "--data-dir"],
    "lw-baseline all": [*RUNTIME, "--seed", "--sender", "--receivers", "--task"],
    "lw-bench latency": [*RUNTIME, "--seed", "--sender", "--receivers", "--task"],
    "lw-bench load": ["--threads"],
    "lw-bench scoring": ["--threads"],
    "lw-bench serve": ["--threads", "--task"],
    "lw-tasks eval-zero-shot": [*RUNTIME, "--seed", "--receivers", "--task", "--data-dir"],
}
# A command reading a saved bridge defaults to what it was trained with.
SAVED_RUN_DEFAULTS = {("lw-eval", "dtype"), ("lw-eval", "sender"), ("lw-eval", "receivers"), ("lw-serve", "dtype")}


def _parser(config: type) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="x")
    add_config_arguments(parser, config)
    return parser


def _shared_options(cli: str, config: type) -> dict[str, tuple[str, str, str]]:
    """flag → (group title, help without its default, the default shown) of the shared groups' options."""
    out = {}
    for group in _parser(config)._action_groups:
        if group.title not in SHARED_TITLES:
            continue
        for action in group._group_actions:
            name = action.option_strings[0] if action.option_strings else "--" + action.dest  # `lw-tasks show TASK`
            text, _, default = action.help.rpartition(" (default: ")
            own_default = (cli, action.dest) in SAVED_RUN_DEFAULTS
            out[name] = (group.title, text, "" if own_default else default)
    return out


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Parsing `--threads N` sets torch's thread count for the process; later tests (which compare a
    one-thread subprocess's training with this process's) must not inherit it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_every_cli_shows_the_shared_groups_with_identical_names_help_and_defaults():
    seen: dict[str, tuple[str, tuple]] = {}
    for cli, config in CLIS.items():
        for flag, described in _shared_options(cli, config).items():
            first = seen.setdefault(flag, (cli, described))
            if described[2] == "" or first[1][2] == "":  # a saved run's own default: names and help still agree
                assert described[:2] == first[1][:2], (flag, cli, first[0])
            else:
                assert described == first[1], (flag, cli, first[0])
    assert {"--threads", "--device", "--dtype", "--progress", "--output-dir", "--sender", "--receivers", "--task",
            "--data-dir", "--text-column", "--label-column", "--max-train-examples"} <= set(seen)


@pytest.mark.parametrize("cli", sorted(REQUIRED))
def test_each_cli_takes_the_options_it_needs(cli):
    flags = {s for a in _parser(CLIS[cli])._actions for s in a.option_strings}
    assert set(REQUIRED[cli]) <= flags, set(REQUIRED[cli]) - flags


def test_no_cli_shows_an_old_spelling():
    for cli, config in CLIS.items():
        visible = {s for a in _parser(config)._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        assert "--wire" not in visible, cli
        # lw-serve's --receiver picks one of the bridge's trained receivers: not a model to load
        assert "--receiver" not in visible or cli == "lw-serve", cli
    assert "--model" not in {s for a in _parser(ZeroShotConfig)._actions if a.help != argparse.SUPPRESS
                             for s in a.option_strings}


def test_every_trained_command_has_one_task_default():
    defaults = {c.__name__: c().task for c in (TrainConfig, BenchConfig, ZeroShotConfig, METHODS.get("lora").config)}
    assert set(defaults.values()) == {"rt-sentiment"}, defaults


@pytest.mark.parametrize(("argv", "config", "field", "old", "value"), [
    (["lora", "--receiver", "m1"], "lw-baseline", "receiver", "--receiver", "m1"),
    (["eval-zero-shot", "--model", "m1"], "lw-tasks", "model", "--model", "m1"),
    (["latency", "--receiver", "m1"], "lw-bench", "receiver", "--receiver", "m1"),
])
def test_old_spellings_still_work_and_warn_once(argv, config, field, old, value, capsys):
    commands = {"lw-baseline": baseline_commands(), "lw-tasks": TASK_COMMANDS, "lw-bench": BENCH_COMMANDS}[config]
    _, parsed = parse_command(config, "", commands, [*argv, old, value])
    assert getattr(parsed, field) == value
    err = capsys.readouterr().err
    assert err.count(f"{old} is deprecated; use --receivers") == 1, err
    _, new = parse_command(config, "", commands, [argv[0], "--receivers", value])
    assert new == parsed and capsys.readouterr().err == ""


def test_lw_eval_and_lw_serve_take_wire_formats_and_the_old_wire(capsys):
    config, _ = parse_config(EvalConfig, ["RUN", "--wire-formats", "int4"], ArgumentParser(prog="lw-eval"))
    assert config.wire == "int4" and capsys.readouterr().err == ""
    old, _ = parse_config(EvalConfig, ["RUN", "--wire", "int4"], ArgumentParser(prog="lw-eval"))
    assert old == config and "--wire is deprecated; use --wire-formats" in capsys.readouterr().err
    serve, _ = parse_config(ServeConfig, ["RUN", "--wire", "int8"], ArgumentParser(prog="lw-serve"))
    assert serve.wire == "int8"


def test_a_single_receiver_command_takes_exactly_one():
    with pytest.raises(LwError, match="--receivers: this command takes exactly one value, got 2: a b"):
        parse_command("lw-baseline", "", baseline_commands(), ["lora", "--receivers", "a", "b"])


def test_a_config_file_may_use_the_flag_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("receivers: [m1]\n")
    _, config = parse_command("lw-baseline", "", baseline_commands(), ["lora", "--config", str(path)])
    assert config.receiver == "m1"
    path.write_text("receivers: [m1, m2]\n")
    with pytest.raises(LwError, match="receivers: this command takes exactly one value"):
        parse_command("lw-baseline", "", baseline_commands(), ["lora", "--config", str(path)])


@pytest.mark.parametrize("cli", ["lw-train", "lw-eval", "lw-serve", "lw-baseline lora", "lw-bench latency",
                                 "lw-bench scoring", "lw-tasks eval-zero-shot"])
def test_threads_sets_torchs_thread_count(cli):
    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    try:
        argv = [*(["RUN"] if cli in ("lw-eval", "lw-serve") else []), "--threads", str(wanted)]
        if " " in cli:
            prog, command = cli.split(" ")
            commands = {"lw-baseline": baseline_commands(), "lw-bench": BENCH_COMMANDS, "lw-tasks": TASK_COMMANDS}[prog]
            _, config = parse_command(prog, "", commands, [command, *argv])
        else:
            config, _ = parse_config(CLIS[cli], argv, ArgumentParser(prog=cli))
        assert config.threads == wanted and torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
    with pytest.raises(LwError, match="threads: must be at least 1, got 0"):
        parse_config(CLIS[cli], [*argv[:-1], "0"], ArgumentParser(prog=cli)) if " " not in cli else parse_command(
            prog, "", commands, [command, *argv[:-1], "0"])


# identity_hash of these configs at 4a0a3e7, before the options were unified (`threads` joined the runtime
# group, `--receiver` / `--model` became `--receivers`): the same settings keep their run directories.
RUN_IDS = {
    "train default": (lambda: TrainConfig(), "2c49cd2fb80334f3"),
    "train interlingua 20ng": (lambda: TrainConfig(task="20ng", receivers=["gemma3-270m", "smollm2-135m"], seed=2,
                                                   progress=False), "8ebf67a44ae3a6d5"),
    "lora rt": (lambda: METHODS.get("lora").config(task="rt-sentiment"), "228d4e16ba31e319"),
    "lora receiver": (lambda: METHODS.get("lora").config(task="r8", receiver="smollm2-135m", sender="gemma3-270m",
                                                         lr=[1e-4, 1e-3]), "0ffdfc7b0fd8abcc"),
    "zero-shot model": (lambda: METHODS.get("zero-shot").config(task="20ng", model="sender"), "9bb42b14419c4788"),
    "eval-zero-shot default": (lambda: ZeroShotConfig(), "2f4c0e812ed27f4a"),
    "eval-zero-shot threads": (lambda: ZeroShotConfig(task="arc-easy-olmes", model="smollm2-135m", threads=1),
                               "9b1f6ccd64204df0"),
    "bench default": (lambda: BenchConfig(), "2f6eb7f51a9e5e89"),
    "bench threads": (lambda: BenchConfig(threads=2, receiver="smollm2-135m"), "f199629cb8909fe0"),
}


@pytest.mark.parametrize("case", sorted(RUN_IDS))
def test_run_ids_did_not_move(case):
    make, expected = RUN_IDS[case]
    assert identity_hash(make()) == expected


def test_threads_leaves_new_run_ids_alone():
    assert identity_hash(TrainConfig(threads=4)) == identity_hash(TrainConfig())
    lora = METHODS.get("lora").config
    assert identity_hash(lora(threads=4)) == identity_hash(lora())


def test_recorded_argv_of_a_baseline_parses_back():
    from lw_core.config import config_argv

    config = METHODS.get("lora").config(task="r8", receiver="m1", threads=2)
    argv = config_argv(config)
    assert "--receivers" in argv and "--receiver" not in argv
    _, again = parse_command("lw-baseline", "", baseline_commands(), ["lora", *argv])
    assert dataclasses.asdict(again) == dataclasses.asdict(config)


def test_a_field_added_after_run_ids_existed_joins_them_only_when_set():
    fusion = TrainConfig(task="squad-olmes", receiver_reads_text=True)
    layout_b = TrainConfig(task="squad-olmes", receiver_reads_text=True, receiver_text_fields=["question"])
    assert identity_hash(layout_b) != identity_hash(fusion)
