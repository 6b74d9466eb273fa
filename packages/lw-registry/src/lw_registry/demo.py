"""A tiny stand-in for an lw training CLI (no torch): `python -m lw_registry.demo --run-dir DIR ...`.

It tracks itself exactly like an lw CLI does (start_run → finish_run / fail_run), "trains" for a few
steps with a checkpoint after each, resumes from the checkpoint when started again, stops cleanly on
SIGTERM (recording `preempted`, like a preempted SLURM job) and writes deterministic fake metrics.
Used by the tests, the README's walkthrough and ops/slurm/plans/demo.yaml.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from pathlib import Path

from lw_registry.record import fail_run, finish_run, start_run, write_json_atomic
from lw_registry.signals import SignalCatcher


def _fake_metric(*parts: object) -> float:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return round(0.5 + digest[0] / 255 * 0.4, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lw_registry.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", "--output-dir", dest="run_dir", required=True, help="the run directory")
    parser.add_argument("--task", default="demo-task")
    parser.add_argument("--method", default="demo-method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3, help="training steps (one checkpoint each)")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="sleep per step")
    parser.add_argument("--fail-until-attempt", type=int, default=0,
                        help="raise an error on every attempt below this number (a flaky run)")
    parser.add_argument("--error", default="RuntimeError: CUDA out of memory (simulated)",
                        help="the failure message printed when failing")
    args = parser.parse_args(argv)

    run_dir = Path(args.run_dir)
    record = start_run(run_dir, name=f"demo/{args.task}/{args.method}/seed{args.seed}",
                       argv=[sys.executable, "-m", "lw_registry.demo", *(argv or sys.argv[1:])],
                       config=vars(args), task=args.task, method=args.method, seed=args.seed)
    stopped = SignalCatcher((signal.SIGTERM,))
    stopped.install()  # for the rest of the process, as an lw CLI's training loop holds it

    ckpt = run_dir / "checkpoint.json"
    step = json.loads(ckpt.read_text())["step"] if ckpt.is_file() else 0
    resumed_from = step
    print(f"attempt {record.attempt}: starting at step {step}/{args.steps}", flush=True)
    if record.attempt < args.fail_until_attempt:
        print(args.error, flush=True)
        fail_run(run_dir, error=args.error, category="oom" if "memory" in args.error else "other",
                 log_tail=args.error)
        return 1
    while step < args.steps:
        if stopped.received is not None:
            print(f"SIGTERM at step {step}: checkpoint saved, exiting", flush=True)
            fail_run(run_dir, error="stopped by SIGTERM", category="preempted", status="preempted",
                     exit_code=143)
            return 143
        time.sleep(args.step_seconds)
        step += 1
        write_json_atomic(ckpt, {"step": step})
        print(f"step {step}/{args.steps} loss {1.0 / step:.3f}", flush=True)
    metrics = {
        "accuracy": _fake_metric(args.task, args.method, args.seed, "acc"),
        "macro_f1": _fake_metric(args.task, args.method, args.seed, "f1"),
        "train_seconds": 0.0,
        "resumed_from_step": resumed_from,
    }
    write_json_atomic(run_dir / "metrics.json", metrics)
    finish_run(run_dir, metrics=metrics, artifacts={"metrics": "metrics.json", "checkpoint": "checkpoint.json"})
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
