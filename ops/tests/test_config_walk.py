"""The walk of a command's config: parsing lw-train's and a baseline's flags and setting up their run
(the method's label and run directory) enters lw's source files in some order; a file entered, left and
entered again is bookkeeping that ping-pongs between modules. Each walk re-enters no file more than
MAX_REENTRIES times (`walk` traces the Python calls, `sys.setprofile`, and counts them).
`python ops/tests/test_config_walk.py` prints both walks."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lw_baselines.cli import DESCRIPTION, commands
from lw_bridge.config import TrainConfig
from lw_bridge.trainer import BRIDGE
from lw_core.config import ArgumentParser, parse_command, parse_config
from lw_tasks.methods import METHODS

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
MAX_REENTRIES = 2


def walk(fn: Callable[[], Any]) -> list[str]:
    """The lw source files `fn` enters, in order (a file's consecutive calls are one entry)."""
    entered: list[str] = []

    def profile(frame, event, _arg):
        if event != "call":
            return
        path = Path(frame.f_code.co_filename)
        if PACKAGES in path.parents and "src" in path.parts:
            name = f"{path.parts[len(PACKAGES.parts)]}/{path.name}"
            if not entered or entered[-1] != name:
                entered.append(name)

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return entered


def reentries(entered: list[str]) -> dict[str, int]:
    return {name: count - 1 for name, count in Counter(entered).items() if count > 1}


def lw_train_setup() -> Callable[[], Any]:
    argv = ["--steps", "3", "--lr", "1e-3", "--receivers", "gemma3-270m"]
    return setup(BRIDGE.name, lambda: parse_config(TrainConfig, argv, ArgumentParser(prog="lw-train"))[0])


def baseline_setup() -> Callable[[], Any]:
    argv = ["lora", "--steps", "3", "--lr", "1e-3", "--receivers", "gemma3-270m"]
    return setup("lora", lambda: parse_command("lw-baseline", DESCRIPTION, commands(), argv)[1])


def setup(method_name: str, parse: Callable[[], Any]) -> Callable[[], Any]:
    """Parse the flags, then what the runner does before any model loads: the label and the run dir."""

    def run() -> None:
        method = METHODS.get(method_name)
        config = parse()
        label = method.label(method, config)
        method.run_dir(config, label, config.task)

    return run


@pytest.mark.parametrize("make", [lw_train_setup, baseline_setup], ids=["lw-train", "lw-baseline"])
def test_config_walk_reenters_no_file_more_than_twice(make, tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path))
    over = {name: n for name, n in reentries(walk(make())).items() if n > MAX_REENTRIES}
    assert not over, f"files re-entered more than {MAX_REENTRIES} times: {over}"


def test_walk_counts_a_file_entered_again_after_another():
    assert reentries(["a.py", "b.py", "a.py", "c.py", "a.py", "b.py"]) == {"a.py": 2, "b.py": 1}


def test_both_setups_walk_into_the_run_dir_module(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path))
    for make in (lw_train_setup, baseline_setup):
        assert "lw-core/run_dirs.py" in walk(make())


if __name__ == "__main__":
    for title, make in (("lw-train", lw_train_setup), ("lw-baseline lora", baseline_setup)):
        entered = walk(make())
        print(f"{title}: re-entries {reentries(entered)}\n  {' → '.join(entered)}")
