"""Counters and gauges in the Prometheus text exposition format (version 0.0.4), for `/metrics`."""

from __future__ import annotations

import resource
import threading
from collections import defaultdict
from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HELP = {
    "lw_serve_requests_total": ("counter", "HTTP requests answered, by endpoint and status code"),
    "lw_serve_request_seconds_sum": ("counter", "seconds spent answering requests, by endpoint"),
    "lw_serve_request_seconds_count": ("counter", "requests timed, by endpoint"),
    "lw_serve_items_total": ("counter", "texts or messages answered, by endpoint"),
    "lw_serve_batches_total": ("counter", "batches run by the worker"),
    "lw_serve_batch_items_sum": ("counter", "items over all batches run (divide by batches for the mean size)"),
    "lw_serve_batch_seconds_sum": ("counter", "seconds the worker spent running batches"),
    "lw_serve_queue_items": ("gauge", "items waiting in the batching queue"),
    "lw_serve_ready": ("gauge", "1 while the server takes requests, 0 while it drains"),
    "lw_serve_peak_rss_bytes": ("gauge", "peak resident memory of the server process so far"),
}


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def peak_rss_bytes() -> float:
    """This process's peak resident memory: VmHWM on Linux (reset by exec: a server started from a large
    process does not report its parent's peak, as getrusage's ru_maxrss, kept across exec, would)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    def __init__(self):
        self._values: dict[str, dict[str, float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], float]] = {}
        self._lock = threading.Lock()
        self.gauge("lw_serve_peak_rss_bytes", peak_rss_bytes)

    def add(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            self._values[name][key] = self._values[name].get(key, 0.0) + value

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(_labels(labels), 0.0)

    def batch(self, items: int, seconds: float) -> None:
        self.add("lw_serve_batches_total")
        self.add("lw_serve_batch_items_sum", items)
        self.add("lw_serve_batch_seconds_sum", seconds)

    def render(self) -> str:
        lines = []
        with self._lock:
            values = {name: dict(series) for name, series in self._values.items()}
        values |= {name: {"": float(read())} for name, read in self._gauges.items()}
        for name in sorted(values):
            kind, text = HELP.get(name, ("untyped", name))
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{labels} {value:g}" for labels, value in sorted(values[name].items())]
        return "\n".join(lines) + "\n"
