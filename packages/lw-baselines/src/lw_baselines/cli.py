"""`lw-baseline METHOD[@MODEL] --task T [...]`, `lw-baseline all --task T`, `lw-baseline list`."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lw_core.config import Command, parse_command
from lw_core.errors import LwError, cli_errors, unknown_name
from lw_core.preemption import exit_on_sigterm

from lw_baselines.common import METHODS, BaselineConfig, _help
from lw_baselines.runner import SUITE, make_config, parse_spec, run_method, run_suite, summary_table

DESCRIPTION = """Run a baseline into its run directory ($LW_RUNS/<task>/<method>/seed<S>-<hash>; the same
command resumes or is recognised as done). METHOD@MODEL runs a single-model method on another model:
@sender, @receiver or a model name. `lw-baseline METHOD --help` lists the method's options."""


@dataclass
class SuiteConfig(BaselineConfig):
    methods: list[str] = field(default_factory=lambda: list(SUITE), metadata=_help("methods to run, in order"))
    skip: list[str] = field(default_factory=list, metadata=_help("methods to leave out"))
    options: list[str] = field(
        default_factory=list,
        metadata=_help("method options: field=value (every method that has it) or method.field=value; "
                       "lists comma-separated, e.g. lora.lr=1e-4,1e-3 steps=100"),
    )


@dataclass
class ListConfig:
    """`lw-baseline list` takes no options."""


def _list_methods() -> str:
    width = max(len(n) for n in METHODS.names())
    lines = ["methods:"]
    for name in METHODS.names():
        m = METHODS.get(name)
        model = f" [default model: {m.default_model}]" if m.default_model else " [sender + receiver]"
        lines.append(f"  {name.ljust(width)}  {m.description}{model}")
    lines.append(f"  {'all'.ljust(width)}  the suite: {', '.join(SUITE)}")
    return "\n".join(lines)


def commands() -> dict[str, Command]:
    out = {name: Command(f"{METHODS.get(name).description}. Sees: {METHODS.get(name).sees}.",
                         METHODS.get(name).config) for name in METHODS.names()}
    return out | {"all": Command("run the baseline suite (models loaded once)", SuiteConfig),
                  "list": Command("list the methods", ListConfig)}


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    with exit_on_sigterm():  # a stopped run is recorded as preempted, not left "running"
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = argv[0] if argv else ""
    name, _, model = spec.partition("@")
    if argv and not spec.startswith("-") and name not in (*METHODS.names(), "all", "list"):
        raise unknown_name("method", name, [*METHODS.names(), "all"])
    if model:
        parse_spec(spec)  # '@model' on a two-model method fails before parsing its options
    command, config = parse_command("lw-baseline", DESCRIPTION, commands(), [name, *argv[1:]] if argv else argv)
    if command == "list":
        print(_list_methods())
        return 0
    if command == "all":
        skip = set(config.skip)
        specs = [s for s in config.methods if s not in skip]
        for s in [*specs, *skip]:
            parse_spec(s)  # unknown names fail before anything runs
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(BaselineConfig)}
        output_dir = values.pop("output_dir")
        started = time.perf_counter()
        results = run_suite(specs, values, output_dir=output_dir, options=config.options)
        print(summary_table(results))
        print(f"suite wall time: {time.perf_counter() - started:.0f} s for {len(results)} methods "
              f"(models loaded once, shared by all)")
        return 0 if all(r["status"] == "completed" for r in results) else 1
    method = METHODS.get(command)
    if model:
        config = make_config(method, dataclasses.asdict(config), model)
    started = time.perf_counter()
    result = run_method(method, config)
    wall = round(time.perf_counter() - started, 1)
    print(summary_table([{**result, "status": "completed", "wall_seconds": wall}]))
    return 0


__all__ = ["LwError", "main"]
