"""Graceful preemption: SIGTERM / SIGUSR1 (SLURM's warning before a time limit or preemption) ask the
trainer to checkpoint after the current step and exit with code 143, which marks the run preempted."""

from __future__ import annotations

import signal
import threading

from lw_core.runs import PREEMPTED_EXIT_CODE

__all__ = ["PREEMPTED_EXIT_CODE", "PreemptionFlag"]


class PreemptionFlag:
    signals = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self) -> PreemptionFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
