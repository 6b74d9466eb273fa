"""`lw-bench`: benchmarks reported side by side as ratios from one run."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import torch
from lw_core import FrozenLM, cli_errors
from lw_core.config import Command, parse_command
from lw_core.presets import PRESETS
from lw_registry.text_table import markdown_table
from lw_tasks import TaskOptions


@dataclass
class BenchOptions:
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's)"})
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


@dataclass
class LatencyConfig(TaskOptions, BenchOptions):
    sender: str = field(default="smollm2-135m", metadata={"help": "sender model: preset, folder or hub id"})
    receiver: str = field(default="gemma3-270m", metadata={"help": "receiver model: preset, folder or hub id"})
    bridge: str | None = field(default=None, metadata={
        "help": "a trained bridge or run dir (default: a fresh one of the same shape)"})
    examples: int = field(default=20, metadata={"help": "test examples timed"})
    layer: int = field(default=15, metadata={"help": "sender layer the bridge reads"})
    num_soft_tokens: int = field(default=8, metadata={"help": "K: soft tokens per receiver"})
    relay_tokens: int = field(default=24, metadata={"help": "tokens the sender writes in the text relay"})


COMMANDS = {
    "load": Command("cold conversion and warm load time of model presets", LoadConfig),
    "scoring": Command("answer scoring: needed LM-head rows vs full logits", ScoringConfig),
    "latency": Command("bridge vs text relay vs receiver reading the text, per example", LatencyConfig),
}


@cli_errors
def main(argv: list[str] | None = None) -> None:
    command, config = parse_command("lw-bench", __doc__, COMMANDS, argv)
    if config.threads:
        torch.set_num_threads(config.threads)
    if command == "load":
        from lw_bench.models_bench import bench_load

        rows = (bench_load(config.models, cold=True) if config.cold else []) + bench_load(config.models, cold=False)
    elif command == "latency":
        from lw_bridge import Bridge
        from lw_bridge.pipeline import bridge_folder

        from lw_bench.latency import bench_latency

        bridge = Bridge.from_pretrained(bridge_folder(config.bridge)) if config.bridge else None
        rows = bench_latency(config.load_task(), FrozenLM.load(config.sender, device="cpu"),
                             FrozenLM.load(config.receiver, device="cpu"), examples=config.examples,
                             layer=config.layer, num_soft_tokens=config.num_soft_tokens,
                             relay_tokens=config.relay_tokens, bridge=bridge)
    else:
        from lw_bench.models_bench import bench_scoring

        rows = [bench_scoring(FrozenLM.load(m, device="cpu"), batch=config.batch, prompt_words=config.prompt_words,
                              answers=config.answers, repeats=config.repeats) for m in config.models]
    if config.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif rows:
        print(markdown_table(list(rows[0]), [list(r.values()) for r in rows]))


if __name__ == "__main__":
    main()
