"""`lw-train` and `lw-eval`; `python -m lw_bridge.cli ARGS` (and so `accelerate launch -m lw_bridge.cli
ARGS`, `torchrun -m lw_bridge.cli ARGS`) runs `lw-train ARGS`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lw_core.config import ArgumentParser, parse_config
from lw_core.errors import LwError, cli_errors
from lw_core.options import DeviceOptions, ModelOptions, ScoringOptions, ThreadOptions, shared_field
from lw_tasks import TaskOptions

from lw_bridge.config import TrainConfig


@cli_errors
def train_main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="lw-train", description="Train a LatentWire bridge (sender → receiver).")
    config, _ = parse_config(TrainConfig, argv, parser)
    from lw_bridge.trainer import train

    train(config)


@dataclass
class EvalConfig(ScoringOptions, DeviceOptions, ThreadOptions):
    run_dir: str = field(default="", metadata={"help": "a run directory written by lw-train (or a bridge folder)",
                                               "positional": True})
    split: str = field(default="test", metadata={"help": "split to evaluate",
                                                 "choices": ["train", "validation", "test"]})
    wire: str | None = field(default=None, metadata={
        "help": "quantise the message: fp16 | int8 | int6 | int4 (lw-train's --wire-formats, one of them)",
        "flag": "wire_formats", "one_value": True, "aliases": ["wire"]})
    dtype: str | None = shared_field(DeviceOptions, "dtype", default=None)
    sender: str | None = shared_field(ModelOptions, "sender", default=None)
    receivers: list[str] | None = shared_field(ModelOptions, "receivers", default=None)
    data_dir: str | None = shared_field(TaskOptions, "data_dir")

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ValueError("give a RUN_DIR (a run directory written by lw-train, or a bridge folder)")
        super().__post_init__()


@cli_errors
def eval_main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="lw-eval", description="Re-evaluate a saved bridge run.")
    config, _ = parse_config(EvalConfig, argv, parser)
    from lw_bridge.pipeline import evaluate_run

    metrics = evaluate_run(Path(config.run_dir), split=config.split, wire=config.wire, device=config.device,
                           batch_size=config.eval_batch_size, sender=config.sender, receivers=config.receivers,
                           data_dir=config.data_dir, dtype=config.dtype, progress=config.progress,
                           output_dir=config.output_dir)
    json.dump(metrics, sys.stdout, indent=2)
    print()


__all__ = ["LwError", "eval_main", "train_main"]

if __name__ == "__main__":  # `python -m lw_bridge.cli` / `accelerate launch -m lw_bridge.cli` is lw-train
    train_main()
