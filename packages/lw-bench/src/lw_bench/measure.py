"""Measuring one path: wall time per stage (CUDA events with synchronisation on a GPU), percentiles
over repeats, and the peak memory while the path runs (sampled RSS on CPU, the allocator's peak on CUDA)."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import torch


class StageClock:
    """Accumulates seconds per named stage of one call. On CUDA each stage is bracketed by events and
    the device is synchronised at the end, so asynchronous kernels are charged to the stage that
    launched them."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self._open: list[tuple[str, object, object]] = []
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._open.append((name, start, end))
        else:
            start_s = time.perf_counter()
            yield
            self.seconds[name] += time.perf_counter() - start_s

    def finish(self) -> dict[str, float]:
        """Seconds per stage of the call (synchronises a GPU once)."""
        if self._open:
            torch.cuda.synchronize()
            for name, start, end in self._open:
                self.seconds[name] += start.elapsed_time(end) / 1000  # type: ignore[attr-defined]
            self._open.clear()
        out = dict(self.seconds)
        self.seconds = defaultdict(float)
        return out


def percentiles(samples: list[float], qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    if not samples:
        raise ValueError("no samples to summarise")
    values = np.percentile(np.asarray(samples, dtype=float), qs)
    return {f"p{q}": float(v) for q, v in zip(qs, values, strict=True)} | {"mean": float(np.mean(samples))}


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; elsewhere the peak so far)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory while the block runs: the CUDA allocator's peak on a GPU, else the process RSS
    sampled every `interval` seconds (the models loaded before the block are part of it)."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.005):
        self.cuda = torch.device(device).type == "cuda"
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = int(torch.cuda.max_memory_allocated())
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.cuda else "rss"
