"""Statistics of a whole global batch when each process of a multi-process run (DDP) holds a share of it.

`gather_rows` joins every process's rows, with gradients, for a loss term that is a statistic across
examples (the bridge's anti-collapse term compares every pair of the batch's soft tokens). Every process
then holds the same term in its loss, and DDP averages the processes' gradients, so the backward sums
the term's gradient over the processes before each keeps its own rows: the parameters get the term's
gradient over the whole batch, as one process would. (torch.distributed.nn's all_gather needs equal
shares and emulates its backward with an all-to-all; a global batch may not split evenly.)

`single_process_hint` catches a launcher that asked for several processes and started one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.distributed as dist


def process_count() -> int:
    """The processes of the default process group (1 when none is initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
        padded[: rows.shape[0]] = rows
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every process's loss holds the term; DDP's average turns the sum into the term's
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every process's `rows` (dim 0), in rank order; `rows` itself with one process. Differentiable:
    each process's rows get the gradient of the loss terms computed from the result on every process."""
    if process_count() == 1:
        return rows
    size = torch.tensor([rows.shape[0]], device=rows.device)
    sizes = [torch.empty_like(size) for _ in range(process_count())]
    dist.all_gather(sizes, size)
    return _GatherRows.apply(rows.contiguous(), [int(s.item()) for s in sizes])


def single_process_hint(num_processes: int, env: Mapping[str, str] = os.environ) -> str | None:
    """What to tell a user whose launcher asked for several processes but started one: accelerate's
    simple launcher (`accelerate launch --num_processes N` without `--multi_gpu`, e.g. on a CPU) sets
    MASTER_PORT for N > 1 but starts a single process, which then finds no WORLD_SIZE."""
    launched = "ACCELERATE_USE_CPU" in env and "MASTER_PORT" in env and "WORLD_SIZE" not in env
    if num_processes == 1 and launched:
        return ("1 process: accelerate launch was asked for several but started one; did you mean "
                "--multi_gpu? (with --device cpu it starts the CPU processes, gloo)")
    return None
