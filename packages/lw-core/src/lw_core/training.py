"""Training machinery under `lw_core.trainer.train_loop`, the loop of every trained method:

- `cosine_schedule`: linear warm-up (training from the first step) then cosine decay to zero;
- `save_training_state` / `find_training_state` / `load_training_state`: a resumable checkpoint of
  the trainable tensors (safetensors), optimizer and scheduler state, every RNG state (python, numpy,
  torch, CUDA, and any named torch.Generator; torch.save, loaded with weights_only=True) and the
  progress (JSON). It is written to a temporary folder and renamed into place, so a kill -9 at any
  moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lw_core.errors import LwError
from lw_core.storage import named_write_errors, save_tensors, save_torch, write_bytes

__all__ = [
    "Checkpoint",
    "cosine_schedule",
    "find_training_state",
    "load_training_state",
    "rng_states",
    "save_training_state",
    "set_rng_states",
    "warmup_steps",
]

STATE_NAME = "trainer_state.json"
OPTIM_NAME = "optimizer.pt"
TENSORS_NAME = "trainable.safetensors"


# ---- schedule ------------------------------------------------------------------------------------
def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    return max(1, int(total_steps * warmup_fraction))


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first `warmup_steps` steps, then cosine decay to zero at `total_steps`.

    Unlike transformers' `get_cosine_schedule_with_warmup`, the first step already trains (at
    1/warmup of the peak): transformers' schedule spends step 0 at lr 0, which on the default
    `lw-train` job (120 steps, 6 of warm-up) moved rt-sentiment test accuracy from 0.824 to 0.762."""
    warmup = warmup_steps(total_steps, warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---- RNG states ----------------------------------------------------------------------------------
def rng_states(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every RNG state as tensors, ints and tuples (what `torch.load(weights_only=True)` reads back)."""
    version, internal, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(cached)},
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Any, generators: dict[str, torch.Generator] | None = None) -> None:
    if isinstance(states, torch.Tensor):  # a checkpoint of older code kept only torch's CPU state
        torch.set_rng_state(states)
        return
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for name, generator in (generators or {}).items():
        if name not in states.get("generators", {}):
            raise LwError(f"training checkpoint has no state for the random generator {name!r}")
        generator.set_state(states["generators"][name])


# ---- checkpoints ---------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A loaded training checkpoint: its folder, progress (JSON) and tensors (empty when none were saved)."""

    path: Path
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def _aside(directory: Path, suffix: str) -> Path:
    return directory.with_name(directory.name + suffix)


def save_training_state(
    directory: str | Path, optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any], *,
    tensors: dict[str, torch.Tensor] | None = None, write: Callable[[Path], Any] | None = None,
    generators: dict[str, torch.Generator] | None = None,
) -> Path:
    """Write a complete checkpoint into `directory.tmp`, then swap it in: `directory` → `.old`,
    `.tmp` → `directory`, drop `.old`. Killed at any moment, `find_training_state` still finds the
    previous complete checkpoint (in `directory` or, between the two renames, in `.old`).

    `tensors` go to safetensors; `write(folder)` may add the caller's own files (a model's
    `save_pretrained`); `state` must be JSON."""
    directory = Path(directory)
    tmp, old = _aside(directory, ".tmp"), _aside(directory, ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        if tensors:
            save_tensors(tensors, tmp / TENSORS_NAME)
        if write is not None:
            with named_write_errors(tmp):
                write(tmp)
        save_torch({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_states(generators)}, tmp / OPTIM_NAME)
        write_bytes(tmp / STATE_NAME, json.dumps(state, indent=2).encode())  # last: marks the folder complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint only takes space (a full disk's)
        raise
    if not directory.exists() and (old / STATE_NAME).is_file():
        os.replace(old, directory)  # a crash between the renames last time: `.old` is the newest complete one
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def find_training_state(directory: str | Path) -> Path | None:
    """The newest complete checkpoint (a crash between the two renames leaves it under `.old`)."""
    directory = Path(directory)
    for candidate in (directory, _aside(directory, ".old")):
        if (candidate / STATE_NAME).is_file():
            return candidate
    return None


def _reason(err: Exception) -> str:
    """One line on why a checkpoint file did not load (torch's unpickling error is a page of advice
    to load it unsafely, which a corrupt file does not deserve)."""
    if isinstance(err, pickle.UnpicklingError):
        return "UnpicklingError: not a torch checkpoint"
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def load_training_state(
    directory: str | Path, optimizer: torch.optim.Optimizer, scheduler: Any, *,
    generators: dict[str, torch.Generator] | None = None, read: Callable[[Checkpoint], Any] | None = None,
) -> Checkpoint:
    """Load a checkpoint written by `save_training_state`: `read(checkpoint)` (the caller's own files and
    state, checked before anything is restored) then the optimizer, scheduler and RNG states. A corrupt
    checkpoint is an LwError that says to delete it."""
    directory = Path(directory)
    reading = directory / STATE_NAME
    try:
        state = json.loads(reading.read_text())
        reading = directory / OPTIM_NAME
        extra = torch.load(reading, weights_only=True)
        tensors: dict[str, torch.Tensor] = {}
        reading = directory / TENSORS_NAME
        if reading.is_file():
            from safetensors.torch import load_file

            tensors = load_file(reading)
    except Exception as err:  # OSError, JSONDecodeError, unpickling and safetensors errors alike
        raise LwError(f"corrupt training checkpoint {directory}: cannot read {reading.name} ({_reason(err)}); "
                      "delete it to start over") from None
    checkpoint = Checkpoint(directory, state, tensors)
    if read is not None:
        read(checkpoint)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_states(extra["rng"], generators)
    return checkpoint
