"""Linear warm-up then cosine decay to zero: lw-core's schedule (transformers'), under the bridge's name."""

from __future__ import annotations

import torch
from lw_core.training import cosine_schedule


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    return cosine_schedule(optimizer, total_steps, warmup_fraction)
