"""`lw-bench`: benchmarks reported side by side as ratios from one run.

`latency`, `limit`, `scaling`, `wire` and `train` time the same work for every path, from raw text to
answer; each is a run in the registry (results.json, results.md and a figure in its run directory).
`all` runs them all. `load` and `scoring` are micro-benchmarks of lw-core. `serve` is a load generator
against `lw-serve` servers: without URLs it starts them itself and records a run (`bench-serve`); with
URLs it measures running ones and prints the table."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from lw_core import FrozenLM, cli_errors
from lw_core.config import Command, parse_command
from lw_core.options import ThreadOptions
from lw_core.presets import PRESETS

from lw_bench.figures import markdown_table
from lw_bench.serve_load import ServeLoadConfig
from lw_bench.suite import BenchConfig

RUNS = ("latency", "limit", "scaling", "wire", "train")


@dataclass
class BenchOptions(ThreadOptions):
    json: bool = field(default=False, metadata={"help": "print JSON instead of a markdown table"})


@dataclass
class LoadConfig(BenchOptions):
    models: list[str] = field(default_factory=PRESETS.names, metadata={
        "help": "model presets", "choices": PRESETS.names()})
    cold: bool = field(default=False, metadata={"help": "also convert each preset into a fresh temporary cache"})


@dataclass
class ScoringConfig(BenchOptions):
    models: list[str] = field(default_factory=lambda: ["gemma3-270m", "smollm2-135m"],
                              metadata={"help": "models: presets, folders or hub ids"})
    batch: int = field(default=8, metadata={"help": "prompts per forward pass"})
    prompt_words: int = field(default=48, metadata={"help": "words per prompt"})
    answers: list[str] = field(default_factory=lambda: [" positive", " negative"], metadata={"help": "answer strings"})
    repeats: int = field(default=3, metadata={"help": "timed repeats (the median is reported)"})


COMMANDS = {
    "latency": Command("p50/p90/p99 at batch 1, throughput, stages and peak memory of every path", BenchConfig),
    "limit": Command("the bridge path against its floor (bare sender and receiver prefills) and the text relay", BenchConfig),
    "scaling": Command("latency of bridge, direct and relay as the input grows", BenchConfig),
    "wire": Command("message bytes and test accuracy at each precision (needs --run)", BenchConfig),
    "train": Command("training examples/s: bridge with and without the sender-state cache, LoRA, prompt tuning",
                     BenchConfig),
    "all": Command("latency, limit, scaling, wire and train (wire only with --run)", BenchConfig),
    "load": Command("cold conversion and warm load time of model presets", LoadConfig),
    "scoring": Command("answer scoring: needed LM-head rows vs full logits", ScoringConfig),
    "serve": Command("requests/s and p50/p90/p99 of lw-serve servers at each concurrency (started here without URLs)",
                     ServeLoadConfig),
}


@cli_errors
def main(argv: list[str] | None = None) -> None:
    command, config = parse_command("lw-bench", __doc__, COMMANDS, argv)
    if isinstance(config, BenchConfig):
        from lw_bench.suite import command as run_benchmark

        names = [n for n in RUNS if n != "wire" or config.run] if command == "all" else [command]
        for name in names:
            run_benchmark(config, name)
        return
    if command == "serve" and config.self_contained:
        from lw_bench.serve_run import command as serve_run

        serve_run(config)
        return
    if command == "serve":
        from lw_bench.serve_load import bench_serve

        rows = bench_serve(config, [e.text for e in config.load_task().split("test")])
    elif command == "load":
        from lw_bench.models_bench import bench_load

        rows = (bench_load(config.models, cold=True) if config.cold else []) + bench_load(config.models, cold=False)
    else:
        from lw_bench.models_bench import bench_scoring

        rows = [bench_scoring(FrozenLM.load(m, device="cpu"), batch=config.batch, prompt_words=config.prompt_words,
                              answers=config.answers, repeats=config.repeats) for m in config.models]
    if config.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif rows:
        print(markdown_table(rows), end="")


if __name__ == "__main__":
    main()
