"""Resumable training state of the bridge: lw-core's atomic checkpoint (optimizer, scheduler, RNG
states, progress) with the bridge itself saved by `save_pretrained` (safetensors + JSON config).
Written to a temporary folder and renamed, so a kill at any moment leaves the previous checkpoint
intact."""

from __future__ import annotations

import os  # noqa: F401  (tests patch `checkpoint.os.replace` / `checkpoint.torch.save` to kill mid-write)
from pathlib import Path
from typing import Any

import torch  # noqa: F401
from lw_core import training
from lw_core.errors import LwError
from lw_core.training import OPTIM_NAME, STATE_NAME, find_training_state

from lw_bridge.bridge import Bridge

__all__ = ["OPTIM_NAME", "STATE_NAME", "find_training_state", "load_training_state", "save_training_state"]


def save_training_state(directory: Path, bridge: Bridge, optimizer, scheduler, state: dict[str, Any]) -> None:
    training.save_training_state(directory, optimizer, scheduler, state, write=bridge.save_pretrained)


def load_training_state(directory: Path, bridge: Bridge, optimizer, scheduler) -> dict[str, Any]:
    def read(folder: Path) -> None:
        saved = Bridge.from_pretrained(folder)
        if not saved.config.fingerprints:  # a checkpoint from before fingerprints: compare the rest
            saved.config.fingerprints = bridge.config.fingerprints
        if saved.config != bridge.config:
            raise LwError(f"checkpoint {folder} was trained with another bridge config; use another --output-dir")
        bridge.load_state_dict(saved.state_dict())

    return training.load_training_state(directory, optimizer, scheduler, read=read).state
