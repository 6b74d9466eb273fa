"""`lw-bench`: benchmarks reported side by side as ratios from one run.

`latency`, `limit`, `scaling`, `wire` and `train` time the same work for every path, from raw text to answer,
and each is a run in the registry (results.json, results.md and a figure in its run directory);
`all` runs them all. `load` and `scoring` are micro-benchmarks of lw-core."""

from __future__ import annotations

import argparse
import json
import sys

import torch
from lw_core import FrozenLM, cli_errors
from lw_core.config import add_config_arguments, build_config, load_config_file
from lw_core.presets import PRESETS

from lw_bench.figures import markdown_table

RUNS = ("latency", "limit", "scaling", "wire", "train")
SUMMARIES = {
    "latency": "p50/p90/p99 at batch 1, throughput, stages and peak memory of every path",
    "limit": "the bridge path against its floor (bare sender and receiver prefills)",
    "scaling": "latency of bridge, direct and relay as the input grows",
    "wire": "message bytes and test accuracy at each precision (needs --run)",
    "train": "training examples/s: bridge with and without the sender-state cache, LoRA, prompt tuning",
    "all": "latency, limit, scaling, wire and train (wire only with --run)",
}


def _config(args: argparse.Namespace):
    from lw_bench.suite import BenchConfig

    values = load_config_file(args.config) if args.config else {}
    names = {f for f in BenchConfig.__dataclass_fields__}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return build_config(BenchConfig, values)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    from lw_bench.suite import BenchConfig

    parser = argparse.ArgumentParser(prog="lw-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, summary in SUMMARIES.items():
        p = sub.add_parser(name, help=summary, description=summary)
        p.add_argument("--config", default=None, help="JSON, TOML or YAML file of BenchConfig values")
        add_config_arguments(p, BenchConfig)
    load = sub.add_parser("load", help="cold conversion and warm load time of model presets")
    load.add_argument("--models", nargs="+", default=PRESETS.names(), choices=PRESETS.names())
    load.add_argument("--cold", action="store_true", help="also convert each preset into a fresh temporary cache")
    score = sub.add_parser("scoring", help="answer scoring: needed LM-head rows vs full logits")
    score.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    score.add_argument("--batch", type=int, default=8)
    score.add_argument("--prompt-words", type=int, default=48)
    score.add_argument("--answers", nargs="+", default=[" positive", " negative"])
    score.add_argument("--repeats", type=int, default=3)
    for p in (load, score):
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = parser.parse_args(argv)

    if args.command in SUMMARIES:
        from lw_bench.suite import command

        config = _config(args)
        names = [n for n in RUNS if n != "wire" or config.run] if args.command == "all" else [args.command]
        for name in names:
            command(config, name)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "load":
        from lw_bench.models_bench import bench_load

        rows = (bench_load(args.models, cold=True) if args.cold else []) + bench_load(args.models, cold=False)
    else:
        from lw_bench.models_bench import bench_scoring

        rows = [bench_scoring(FrozenLM.load(m, device="cpu"), batch=args.batch, prompt_words=args.prompt_words,
                              answers=args.answers, repeats=args.repeats) for m in args.models]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(markdown_table(rows), end="")


if __name__ == "__main__":
    main()
