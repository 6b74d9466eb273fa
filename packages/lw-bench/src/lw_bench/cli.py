"""`lw-bench`: benchmarks reported side by side as ratios from one run."""

from __future__ import annotations

import argparse
import json
import sys

import torch
from lw_core import FrozenLM, cli_errors
from lw_core.presets import PRESETS


def _print_table(rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lw-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="cold conversion and warm load time of model presets")
    load.add_argument("--models", nargs="+", default=PRESETS.names(), choices=PRESETS.names())
    load.add_argument("--cold", action="store_true", help="also convert each preset into a fresh temporary cache")
    score = sub.add_parser("scoring", help="answer scoring: needed LM-head rows vs full logits")
    score.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    score.add_argument("--batch", type=int, default=8)
    score.add_argument("--prompt-words", type=int, default=48)
    score.add_argument("--answers", nargs="+", default=[" positive", " negative"])
    score.add_argument("--repeats", type=int, default=3)
    lat = sub.add_parser("latency", help="bridge vs text relay vs receiver reading the text, per example")
    lat.add_argument("--task", default="rt-sentiment")
    lat.add_argument("--sender", default="smollm2-135m")
    lat.add_argument("--receiver", default="gemma3-270m")
    lat.add_argument("--bridge", default=None, help="a trained bridge or run dir (default: a fresh one of the same shape)")
    lat.add_argument("--examples", type=int, default=20)
    lat.add_argument("--layer", type=int, default=15)
    lat.add_argument("--num-soft-tokens", type=int, default=8)
    lat.add_argument("--relay-tokens", type=int, default=24, help="tokens the sender writes in the text relay")
    for p in (load, score, lat):
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "load":
        from lw_bench.models_bench import bench_load

        rows = (bench_load(args.models, cold=True) if args.cold else []) + bench_load(args.models, cold=False)
    elif args.command == "latency":
        from lw_bridge import Bridge
        from lw_bridge.pipeline import bridge_folder
        from lw_tasks import load_task

        from lw_bench.latency import bench_latency

        bridge = Bridge.from_pretrained(bridge_folder(args.bridge)) if args.bridge else None
        rows = bench_latency(load_task(args.task), FrozenLM.load(args.sender, device="cpu"),
                             FrozenLM.load(args.receiver, device="cpu"), examples=args.examples, layer=args.layer,
                             num_soft_tokens=args.num_soft_tokens, relay_tokens=args.relay_tokens, bridge=bridge)
    else:
        from lw_bench.models_bench import bench_scoring

        rows = [
            bench_scoring(FrozenLM.load(m, device="cpu"), batch=args.batch, prompt_words=args.prompt_words,
                          answers=args.answers, repeats=args.repeats)
            for m in args.models
        ]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        _print_table(rows)


if __name__ == "__main__":
    main()
