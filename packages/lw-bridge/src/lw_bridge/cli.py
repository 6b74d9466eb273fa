"""`lw-train` and `lw-eval`; `python -m lw_bridge.cli ARGS` (and so `accelerate launch -m lw_bridge.cli
ARGS`, `torchrun -m lw_bridge.cli ARGS`) runs `lw-train ARGS`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lw_core.config import ArgumentParser, parse_config
from lw_core.errors import LwError, cli_errors

from lw_bridge.config import TrainConfig


@cli_errors
def train_main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="lw-train", description="Train a LatentWire bridge (sender → receiver).")
    config, _ = parse_config(TrainConfig, argv, parser)
    from lw_bridge.trainer import train

    train(config)


@dataclass
class EvalConfig:
    run_dir: str = field(metadata={"help": "a run directory written by lw-train (or a bridge folder)",
                                   "positional": True})
    split: str = field(default="test", metadata={"help": "split to evaluate",
                                                 "choices": ["train", "validation", "test"]})
    wire: str | None = field(default=None, metadata={"help": "quantise the message: fp16 | int8 | int6 | int4"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N | mps"})
    eval_batch_size: int = field(default=64, metadata={"help": "examples per evaluation batch"})
    sender: str | None = field(default=None, metadata={
        "help": "sender model: preset, folder or hub id; None: the one the bridge was trained with"})
    receivers: list[str] | None = field(default=None, metadata={
        "help": "receiver model(s), in the bridge's receiver order; None: those it was trained with"})
    data_dir: str | None = field(default=None, metadata={
        "help": "embedded / hub tasks: a folder holding the task's source files; None: as at training"})


@cli_errors
def eval_main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="lw-eval", description="Re-evaluate a saved bridge run.")
    config, _ = parse_config(EvalConfig, argv, parser)
    from lw_bridge.pipeline import evaluate_run

    metrics = evaluate_run(Path(config.run_dir), split=config.split, wire=config.wire, device=config.device,
                           batch_size=config.eval_batch_size, sender=config.sender, receivers=config.receivers,
                           data_dir=config.data_dir)
    json.dump(metrics, sys.stdout, indent=2)
    print()


__all__ = ["LwError", "eval_main", "train_main"]

if __name__ == "__main__":  # `python -m lw_bridge.cli` / `accelerate launch -m lw_bridge.cli` is lw-train
    train_main()
