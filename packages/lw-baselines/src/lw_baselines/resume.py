"""Where `train_and_select` checkpoints, and how its selection state (history, the best learning rate
and step so far with its validation result and trainable state) goes into lw-core's resumable
checkpoint and back.

The one runner (`lw_tasks.runner`) opens `checkpoints_in(run_dir / "checkpoints")` around a method's run, so every trained
method checkpoints into its own hashed run directory (a folder per learning rate,
`lw_core.grid.rate_folder`) without taking a new argument; the same command then resumes there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lw_core.errors import LwError
from lw_tasks import EvalResult

PARAM, BEST, SCORES = "param.", "best.", "validation_scores"


def check_grid(directory: Path, state: dict[str, Any], grid: list[float], steps: int, eval_every: int) -> None:
    saved = (state.get("grid"), state.get("steps"), state.get("eval_every"))
    if saved != (grid, steps, eval_every):
        raise LwError(f"training checkpoint {directory} was written for lr {saved[0]}, steps {saved[1]}, eval_every "
                      f"{saved[2]}, not lr {grid}, steps {steps}, eval_every {eval_every}; use another --output-dir")


def pack(params: list[torch.nn.Parameter], best: Any) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: the current trainable parameters and the best state so far."""
    tensors = {f"{PARAM}{i}": p.detach() for i, p in enumerate(params)}
    if best is not None:
        tensors |= {f"{BEST}{k}": v for k, v in best.state.items()}
        if best.validation.scores is not None:
            tensors[SCORES] = best.validation.scores
    return tensors


def best_record(best: Any, lr_index: int) -> dict[str, Any] | None:
    if best is None:
        return None
    v = best.validation
    return {"lr": best.lr, "lr_index": lr_index, "step": best.step,
            "validation": {"task": v.task, "split": v.split, "metrics": v.metrics, "predictions": v.predictions}}


def unpack_params(params: list[torch.nn.Parameter], tensors: dict[str, torch.Tensor], directory: Path) -> None:
    saved = sorted((k for k in tensors if k.startswith(PARAM)), key=lambda k: int(k[len(PARAM):]))
    if len(saved) != len(params) or any(tensors[k].shape != p.shape for k, p in zip(saved, params, strict=False)):
        raise LwError(f"training checkpoint {directory} holds other trainable parameters; use another --output-dir")
    with torch.no_grad():
        for k, p in zip(saved, params, strict=True):
            p.copy_(tensors[k])


def unpack_best(record: dict[str, Any], tensors: dict[str, torch.Tensor], like: dict[str, torch.Tensor]
                ) -> tuple[dict[str, torch.Tensor], EvalResult]:
    """The best state (on the device of `like`, a fresh trainable's state) and its validation result."""
    state = {k[len(BEST):]: v for k, v in tensors.items() if k.startswith(BEST)}
    if state.keys() != like.keys():
        raise LwError(f"the best state in the training checkpoint has keys {sorted(state)[:3]}..., not "
                      f"{sorted(like)[:3]}...; use another --output-dir")
    state = {k: v.to(like[k].device) for k, v in state.items()}
    return state, EvalResult(**record["validation"], scores=tensors.get(SCORES))
