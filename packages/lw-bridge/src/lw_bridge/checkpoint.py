"""Resumable training state: the bridge (safetensors), optimizer/scheduler/RNG state (torch.save,
loaded with weights_only=True) and progress (JSON), written to a temporary folder and renamed, so a
kill at any moment leaves the previous checkpoint intact."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lw_core.errors import LwError

from lw_bridge.bridge import Bridge

STATE_NAME = "trainer_state.json"
OPTIM_NAME = "optimizer.pt"


def save_training_state(directory: Path, bridge: Bridge, optimizer, scheduler, state: dict[str, Any]) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    bridge.save_pretrained(tmp)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state()}, tmp / OPTIM_NAME)
    (tmp / STATE_NAME).write_text(json.dumps(state, indent=2))
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_training_state(directory: Path) -> Path | None:
    """The newest complete checkpoint (a crash between the two renames leaves it under `.old`)."""
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE_NAME).is_file():
            return candidate
    return None


def load_training_state(directory: Path, bridge: Bridge, optimizer, scheduler) -> dict[str, Any]:
    try:
        state = json.loads((directory / STATE_NAME).read_text())
        saved = Bridge.from_pretrained(directory)
        extra = torch.load(directory / OPTIM_NAME, weights_only=True)
    except (OSError, json.JSONDecodeError, RuntimeError) as err:
        raise LwError(f"corrupt training checkpoint {directory}: {err}; delete it to start over") from None
    if not saved.config.fingerprints:  # a checkpoint from before fingerprints: compare the rest
        saved.config.fingerprints = bridge.config.fingerprints
    if saved.config != bridge.config:
        raise LwError(f"checkpoint {directory} was trained with another bridge config; use another --output-dir")
    bridge.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])
    return state
