"""`lw-bench serve` without URLs: it starts the servers itself, measures them as lw_bench.serve_load measures
any server, and records a run (`bench-serve`: results.json, results.md, metrics).

The servers are `lw-serve` processes on free loopback ports (lw_serve.process), started one group at a
time and stopped before the next starts: the pipeline; then the split pair (sender and receiver, the
receiver also reading the text); then a pipeline per further `--receiver-backends` entry. Only what is
being measured is up, so no idle server holds memory or CPU during another's load, and each server's peak
memory is its own. Each stops (SIGTERM, SIGKILL after a grace period) before the next group starts and on
every way out: an error, Ctrl-C, SIGTERM (the run is then recorded as preempted), and, since a started
server stops with its parent, SIGKILL. Their logs are in the run directory's `servers/`. Then, with no
server left, the same bridge's in-process batch throughput on the first backend. Without `--run` the
bridge is a fresh seeded default bridge (`lw_serve.parity.fresh_bridge`; the cost does not depend on the
weights), recorded as "fresh"."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from lw_bridge.pipeline import bridge_folder
from lw_core.models import resolve_device
from lw_core.options import apply_threads
from lw_core.preemption import exit_on_sigterm
from lw_core.run_dirs import hashed_run_dir
from lw_core.runs import open_run

from lw_bench.figures import markdown_table
from lw_bench.serve_load import ServeLoadConfig, Target, backend_targets, measure, with_in_process
from lw_bench.suite import write_outputs

METHOD = "bench-serve"


Servers = list[tuple[str, str | None]]
"""(role, receiver backend) of each server of a group, started together."""


def server_groups(backends: Sequence[str]) -> list[tuple[Servers, Callable[[list[str]], list[Target]]]]:
    """Each group of servers, with the targets its servers' URLs give: the pipeline; the split pair and its
    receiver reading the text; a pipeline per further backend (its predict and read, not compared with
    the in-process throughput). Targets and servers are named by backend when there are several."""
    suffix = (lambda b: f" ({b})") if len(backends) > 1 else (lambda b: "")
    first = suffix(backends[0])
    groups: list[tuple[Servers, Callable[[list[str]], list[Target]]]] = [
        ([("pipeline", backends[0])],
         lambda u: backend_targets(lambda _: first, pipeline=u[0], names={u[0]: "pipeline" + first})),
        ([("sender", None), ("receiver", backends[0])],
         lambda u: backend_targets(lambda _: first, sender=u[0], receiver=u[1], reader=u[1],
                                   names={u[0]: "sender", u[1]: "receiver" + first}))]
    for backend in backends[1:]:
        groups.append(([("pipeline", backend)], partial(_other_backend, suffix(backend))))
    return groups


def _other_backend(suffix: str, urls: list[str]) -> list[Target]:
    return backend_targets(lambda _: suffix, pipeline=urls[0], reader=urls[0], compared=False,
                           names={urls[0]: "pipeline" + suffix})


def serve_and_measure(config: ServeLoadConfig, bridge: str, texts: Sequence[str], logs: Path
                      ) -> tuple[list[dict[str, Any]], dict[str, float | None], list[Target]]:
    """Each group of servers started, measured and stopped in turn: the rows, each server's peak memory
    (MiB) and the targets measured."""
    from lw_serve.process import start

    threads = ["--threads", str(config.threads)] if config.threads else []
    env = {k: v for k, v in os.environ.items() if k != "LW_SERVE_API_KEY"}  # the servers started here take no key
    rows: list[dict[str, Any]] = []
    peaks: dict[str, float | None] = {}
    measured: list[Target] = []
    logs.mkdir(parents=True, exist_ok=True)
    for group, targets_of in server_groups(config.receiver_backends):
        with contextlib.ExitStack() as servers:
            urls = []
            for role, backend in group:
                args = [*(["--receiver-backend", backend] if backend else []), *threads]
                log = logs / f"{role}{'-' + backend if backend else ''}.log"
                urls.append(servers.enter_context(start(bridge, role, device=config.device, args=args, log=log,
                                                        env=env, ready_timeout=config.start_timeout)).url)
            targets = targets_of(urls)
            group_rows, group_peaks = measure(targets, texts, config, {})
        rows += group_rows
        peaks |= group_peaks
        measured += targets
    return rows, peaks, measured


def serve_metrics(rows: Sequence[dict[str, Any]], peaks: dict[str, float | None]) -> dict[str, Any]:
    """req/s and p99 per target and concurrency, served / in process where compared, peak MiB per server."""
    metrics: dict[str, Any] = {}
    for row in rows:
        if "concurrency" not in row:
            metrics["req_per_s in process"] = row["req/s"]
            continue
        at = f"{row['target']} c{row['concurrency']}"
        metrics[f"req_per_s {at}"] = row["req/s"]
        metrics[f"p99_ms {at}"] = row.get("p99 ms")
        metrics[f"failed {at}"] = row["failed"]
        if "served / in process" in row:
            metrics[f"ratio served / in process {at}"] = row["served / in process"]
    metrics |= {f"peak_mib {server}": mib for server, mib in peaks.items()}
    return metrics


def command(config: ServeLoadConfig) -> Path:
    """Start, measure and stop the servers, then the in-process throughput, as a tracked run."""
    if config.run:
        bridge_folder(config.run)  # a missing or wrong run dir: one line before anything starts
    if "llama-cpp" in config.receiver_backends:
        from lw_serve.llama_receiver import load_llama_cpp

        load_llama_cpp()  # the missing extra: one line now, not after the other servers ran
    apply_threads(config)
    task = config.load_task()
    texts = [e.text for e in task.split("test")]
    device = str(resolve_device(config.device))
    directory = hashed_run_dir(config, METHOD, task.name)
    with open_run(directory, config, name=METHOD, task=task.name, method=METHOD, seed=config.seed,
                  device=device) as run, exit_on_sigterm(), tempfile.TemporaryDirectory(prefix="lw-bench-serve-") as scratch:
        if config.run:
            bridge = config.run
        else:
            from lw_serve.parity import fresh_bridge

            bridge = str(fresh_bridge(config.task, Path(scratch) / "bridge", seed=config.seed))
        rows, peaks, targets = serve_and_measure(config, bridge, texts, run.path("servers"))
        rows = with_in_process(rows, targets, texts, config, bridge, config.receiver_backends[0])
        results = {"rows": rows, "peak_mib": peaks, "in_process_batch": config.in_process_batch,
                   "environment": {"device": device, "threads": torch.get_num_threads(), "task": task.name,
                                   "bridge": "trained" if config.run else "fresh",
                                   "receiver_backends": config.receiver_backends,
                                   "concurrency": config.concurrency, "requests": config.requests}}
        markdown = "### Serving under load\n\n" + markdown_table(rows)
        run.metrics.update(serve_metrics(rows, peaks))
        write_outputs(run, results, markdown, None)
    if config.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(markdown)
    print(f"run: {directory}", file=sys.stderr if config.json else sys.stdout)
    return directory
