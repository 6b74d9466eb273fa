"""The learning-rate grid over `train_loop`, the one driver every trained method runs (the bridge,
LoRA, DoRA, prompt tuning): each learning rate trains from the same initialisation and the same data
order in its own resumable checkpoint folder (`rate_folder`), carrying the grid's best so far as the bar
a step must beat to be kept; validation picks (lr, step) across the grid, test is never looked at.

The data order is pure: the examples of step t are a function of (seed, t) only (`EpochOrder`), so a
resumed run reads exactly the batches of an uninterrupted one without checkpointing any order."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lw_core.preemption import PreemptionFlag, stop_for_preemption
from lw_core.trainer import Best, LoopSettings, Recipe, train_loop

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger("lw.grid")


class EpochOrder:
    """The training examples in random epochs, read `batch_size` at a time across epoch boundaries: the
    batch of step t is positions [t·b, (t+1)·b) of the epochs' permutations laid end to end.

    `reseeded` (the bridge's order): epoch e is `randperm` from a generator seeded `seed·100003 + e`.
    Otherwise (the trained baselines'): the epochs are successive `randperm` draws of one generator
    seeded `seed`, kept once drawn."""

    def __init__(self, size: int, batch_size: int, seed: int, *, reseeded: bool):
        self.size, self.batch_size, self.seed, self.reseeded = size, batch_size, seed, reseeded
        self._drawn: list[torch.Tensor] = []
        self._generator = torch.Generator().manual_seed(seed)

    def epoch(self, index: int) -> torch.Tensor:
        if self.reseeded:
            return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + index))
        while len(self._drawn) <= index:
            self._drawn.append(torch.randperm(self.size, generator=self._generator))
        return self._drawn[index]

    def batch(self, step: int) -> list[int]:
        start = step * self.batch_size
        return [int(self.epoch(p // self.size)[p % self.size]) for p in range(start, start + self.batch_size)]


def rate_folder(checkpoints: Path, index: int, rates: int) -> Path:
    """The checkpoint folder of the grid's `index`-th learning rate (`last` when the grid has one)."""
    return checkpoints / ("last" if rates == 1 else f"last-lr{index}")


@dataclass
class GridOutcome:
    """The grid's best (lr, step) and the training time of all its runs."""

    best: Best
    lr: float
    index: int
    train_seconds: float


RecipeFor = Callable[[int, float, Path | None], Recipe]
"""(index of the learning rate, the learning rate, its checkpoint folder) → a fresh recipe from the
grid's initialisation (the same for every learning rate)."""


def train_grid(rates: Sequence[float], recipe_for: RecipeFor, settings: LoopSettings, accelerator: Accelerator,
               checkpoints: Path | None) -> GridOutcome:
    """One `train_loop` per learning rate, `settings` with each rate's lr, folder and bar. With
    `checkpoints` every rate resumes from its folder (a finished one loads its last checkpoint and trains
    nothing) and SIGTERM / SIGUSR1 between two rates stops the grid there (exit 143)."""
    bar: Best | None = None
    chosen, seconds = 0, 0.0
    with PreemptionFlag() if checkpoints is not None else contextlib.nullcontext(None) as flag:
        for index, lr in enumerate(rates):
            folder = rate_folder(checkpoints, index, len(rates)) if checkpoints is not None else None
            described = settings.description + (f" lr={lr:g}" if len(rates) > 1 else "")
            rate = dataclasses.replace(settings, lr=lr, checkpoint_dir=folder, best=bar, description=described)
            loop = train_loop(recipe_for(index, lr, folder), rate, accelerator, flag)
            if loop.best != bar:
                chosen = index
            bar, seconds = loop.best, seconds + loop.train_seconds
            if len(rates) > 1:
                log.info("lr %g: best validation so far %.4f at step %d (lr %g)", lr, bar.score, bar.step,
                         rates[chosen])
            if flag is not None and flag.requested and index + 1 < len(rates):
                stop_for_preemption(f"the end of lr {lr:g}")
    assert bar is not None
    return GridOutcome(bar, rates[chosen], chosen, seconds)
