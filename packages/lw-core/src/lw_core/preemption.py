"""Preemption, the one place: SLURM sends SIGTERM (and SIGUSR1 as a warning) before a time limit or a
preemption. A trainer holds a `PreemptionFlag` (the signal sets it; the trainer checkpoints after the
current step and calls `stop_for_preemption`); any other stretch of a run holds `exit_on_sigterm`.
Either way the process exits with `PREEMPTED_EXIT_CODE`, which an open run records as preempted, not
failed, keeping what it wrote; the same command resumes. Both catch signals with the registry's
`SignalCatcher` (`lw_registry.signals`), as the registry's executor does."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import NoReturn

from lw_registry.signals import SignalCatcher

PREEMPTED_EXIT_CODE = 143
"""Exit code of a process stopped by SIGTERM (128 + 15): its run is recorded as preempted, not failed."""

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
"""What a trainer treats as "checkpoint and stop"."""

log = logging.getLogger("lw.preemption")


class PreemptionFlag(SignalCatcher):
    """Within this block `SIGNALS` set `requested` instead of killing the process; the trainer checks it
    after each step, checkpoints and calls `stop_for_preemption`. Off the main thread it is inert."""

    def __init__(self):
        super().__init__(SIGNALS)

    @property
    def requested(self) -> bool:
        return self.received is not None


def stop_for_preemption(where: str) -> NoReturn:
    log.warning("preemption signal: checkpointed at %s; the same command resumes", where)
    raise SystemExit(PREEMPTED_EXIT_CODE)


def _exit_preempted(signum: int) -> NoReturn:
    raise SystemExit(PREEMPTED_EXIT_CODE)


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Within this block SIGTERM raises `SystemExit(PREEMPTED_EXIT_CODE)`, so an open run records that
    it was stopped (preempted) and keeps what it wrote, instead of dying with its record at "running"."""
    with SignalCatcher((signal.SIGTERM,), _exit_preempted):
        yield
