"""Latency, throughput and peak memory of every path in one run, from raw text to answer.

Latency is per request at batch 1: p50 / p90 / p99 over `repeats` calls after `warmup` untimed ones,
with each stage's mean. Throughput is examples per second at each batch size over the same examples.
Ratios between paths (bridge / direct, relay / bridge, bridge / floor) come from the same run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from lw_tasks import Example
from tqdm.auto import tqdm

from lw_bench.measure import PeakMemory, StageClock, percentiles

Path_ = Callable[[Sequence[Example], StageClock], list[int]]


@dataclass
class PathTimes:
    name: str
    trained: bool
    latency_ms: dict[str, float]
    stages_ms: dict[str, float]
    peak_memory_mib: float
    memory_kind: str
    throughput: dict[int, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.name, "weights": "trained" if self.trained else "fresh"}
        out |= {f"{k} ms": round(v, 1) for k, v in self.latency_ms.items() if k != "mean"}
        out |= {f"batch {b} ex/s": round(v, 2) for b, v in self.throughput.items()}
        out["peak memory MiB"] = round(self.peak_memory_mib, 1)
        return out


def _timed_call(path: Path_, batch: Sequence[Example], clock: StageClock, cuda: bool) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    path(batch, clock)
    stages = clock.finish()  # synchronises a GPU, so the wall time below covers the queued kernels
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, stages


@torch.no_grad()
def time_path(path: Path_, examples: Sequence[Example], *, device: torch.device | str = "cpu", warmup: int = 2,
              repeats: int = 20, batch_sizes: Sequence[int] = (), throughput_examples: int = 64) -> PathTimes:
    """Batch-1 latency percentiles and stage means, peak memory over the whole measurement, and
    throughput at each batch size: at batch 1 from the timed calls, above it over
    `max(batch, throughput_examples)` examples, cycled (after one untimed call at that shape on a GPU)."""
    if not examples:
        raise ValueError("no examples to time")
    cuda = torch.device(device).type == "cuda"
    clock = StageClock(device)
    for i in range(warmup):
        _timed_call(path, [examples[i % len(examples)]], clock, cuda)
    totals: list[float] = []
    stage_sums: dict[str, float] = defaultdict(float)
    throughput: dict[int, float] = {}
    with PeakMemory(device) as memory:
        for i in range(repeats):
            total, stages = _timed_call(path, [examples[i % len(examples)]], clock, cuda)
            totals.append(total)
            for name, seconds in stages.items():
                stage_sums[name] += seconds
        for batch in batch_sizes:
            if batch == 1:  # the batch-1 calls above already are its throughput measurement
                throughput[1] = len(totals) / sum(totals)
                continue
            n = max(batch, throughput_examples)
            pool = [examples[i % len(examples)] for i in range(n)]
            if cuda:  # kernels are chosen per shape on a GPU; a CPU call has nothing to warm
                _timed_call(path, pool[:batch], clock, cuda)
            seconds = sum(_timed_call(path, pool[s : s + batch], clock, cuda)[0] for s in range(0, n, batch))
            throughput[batch] = n / seconds
    return PathTimes(
        name=getattr(path, "name", type(path).__name__),
        trained=bool(getattr(path, "trained", False)),
        latency_ms={k: v * 1000 for k, v in percentiles(totals).items()},
        stages_ms={k: v / repeats * 1000 for k, v in stage_sums.items()},
        peak_memory_mib=memory.peak / 2**20,
        memory_kind=memory.kind,
        throughput=throughput,
    )


def time_paths(paths: Sequence[Path_], examples: Sequence[Example], *, device: torch.device | str = "cpu",
               warmup: int = 2, repeats: int = 20, batch_sizes: Sequence[int] = (),
               throughput_examples: int = 64, progress: bool = True) -> list[PathTimes]:
    out = []
    for path in tqdm(paths, desc="paths", disable=not progress):
        out.append(time_path(path, examples, device=device, warmup=warmup, repeats=repeats,
                             batch_sizes=batch_sizes, throughput_examples=throughput_examples))
    return out


def ratios(results: Sequence[PathTimes], pairs: Sequence[tuple[str, str]], key: str = "p50") -> dict[str, float]:
    """`a / b` of the `key` latency for each pair of path names present in `results`."""
    by_name = {r.name: r for r in results}
    return {f"{a} / {b}": by_name[a].latency_ms[key] / by_name[b].latency_ms[key]
            for a, b in pairs if a in by_name and b in by_name}


def module_share(bridge: PathTimes, module_stages: Sequence[str] = ("encoder", "adapter")) -> float:
    """The bridge module's share of the bridge path's time (the rest are the two frozen models)."""
    total = sum(bridge.stages_ms.values())
    return sum(bridge.stages_ms.get(s, 0.0) for s in module_stages) / total if total else 0.0
