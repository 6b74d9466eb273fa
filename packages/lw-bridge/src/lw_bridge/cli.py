"""`lw-train` and `lw-eval`; `python -m lw_bridge.cli ARGS` (and so `accelerate launch -m lw_bridge.cli
ARGS`, `torchrun -m lw_bridge.cli ARGS`) runs `lw-train ARGS`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lw_core.config import parse_config
from lw_core.errors import LwError, cli_errors

from lw_bridge.config import TrainConfig


@cli_errors
def train_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lw-train", description="Train a LatentWire bridge (sender → receiver).")
    config, _ = parse_config(TrainConfig, argv, parser)
    from lw_bridge.trainer import train

    train(config)


@cli_errors
def eval_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lw-eval", description="Re-evaluate a saved bridge run.")
    parser.add_argument("run_dir", help="a run directory written by lw-train (or a bridge folder)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--wire", default=None, help="quantise the message: fp16 | int8 | int6 | int4")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    from lw_bridge.pipeline import evaluate_run

    metrics = evaluate_run(Path(args.run_dir), split=args.split, wire=args.wire, device=args.device,
                           batch_size=args.batch_size)
    json.dump(metrics, sys.stdout, indent=2)
    print()


__all__ = ["LwError", "eval_main", "train_main"]

if __name__ == "__main__":  # `python -m lw_bridge.cli` / `accelerate launch -m lw_bridge.cli` is lw-train
    train_main()
