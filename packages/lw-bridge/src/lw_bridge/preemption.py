"""Graceful preemption (SIGTERM / SIGUSR1 → checkpoint and exit 143): lw-core's, re-exported."""

from __future__ import annotations

from lw_core.training import PREEMPTED_EXIT_CODE, PreemptionFlag

__all__ = ["PREEMPTED_EXIT_CODE", "PreemptionFlag"]
