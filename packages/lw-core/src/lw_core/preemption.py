"""Preemption, the one place: SLURM sends SIGTERM (and SIGUSR1 as a warning) before a time limit or a
preemption. A trainer holds a `PreemptionFlag` (the signal sets it; the trainer checkpoints after the
current step and calls `stop_for_preemption`); any other stretch of a run holds `exit_on_sigterm`.
Either way the process exits with `PREEMPTED_EXIT_CODE`, which an open run records as preempted, not
failed, keeping what it wrote; the same command resumes."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

PREEMPTED_EXIT_CODE = 143
"""Exit code of a process stopped by SIGTERM (128 + 15): its run is recorded as preempted, not failed."""

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""What a trainer treats as "checkpoint and stop"."""

log = logging.getLogger("lw.preemption")


class PreemptionFlag:
    """Within this block `SIGNALS` set `requested` instead of killing the process; the trainer checks it
    after each step, checkpoints and calls `stop_for_preemption`. Off the main thread it is inert."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def stop_for_preemption(where: str) -> NoReturn:
    log.warning("preemption signal: checkpointed at %s; the same command resumes", where)
    raise SystemExit(PREEMPTED_EXIT_CODE)


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Within this block SIGTERM raises `SystemExit(PREEMPTED_EXIT_CODE)`, so an open run records that
    it was stopped (preempted) and keeps what it wrote, instead of dying with its record at "running"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(PREEMPTED_EXIT_CODE)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
