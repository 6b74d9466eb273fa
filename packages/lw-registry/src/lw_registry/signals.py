"""The one way lw catches a signal (torch-free): within a `SignalCatcher` block the signals it names are
recorded (`received`, `received_at`) and passed to its `on_signal` instead of taking their default
action; the previous handlers come back when the block ends. Off the main thread (where Python cannot
set handlers) it is inert.

SLURM sends SIGTERM before a preemption or a time limit and SIGUSR1 as a warning; everything that
reacts to them builds on this: lw-core's preemption (`lw_core.preemption`: a trainer's flag, a CLI's
exit as preempted), the registry's executor (forwarding them to the command it runs) and the demo
command."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any


class SignalCatcher:
    """Catch `signals` while installed (a `with` block, or `install` / `restore`)."""

    def __init__(self, signals: Iterable[int], on_signal: Callable[[int], None] | None = None):
        self.signals = tuple(signals)
        self.on_signal = on_signal
        self.received: int | None = None
        """The last signal caught; None until one is."""
        self.received_at: float | None = None
        """When it was caught (epoch seconds)."""
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received, self.received_at = signum, time.time()
        if self.on_signal is not None:
            self.on_signal(signum)

    def __enter__(self) -> SignalCatcher:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
