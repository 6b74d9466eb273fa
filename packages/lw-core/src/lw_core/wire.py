"""Wire codec for latent messages: fp32/fp16 or symmetric group-wise integer quantisation
(int8 / int6 / int4), with an honest byte count (packed values + one fp16 scale per group)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lw_core.errors import LwError

FORMATS = ("fp32", "fp16", "int8", "int6", "int4")


@dataclass(frozen=True)
class WireFormat:
    name: str
    group_size: int = 32

    def __post_init__(self):
        if self.name not in FORMATS:
            raise LwError(f"unknown wire format {self.name!r}; known: {', '.join(FORMATS)}")
        if self.group_size < 1:
            raise LwError(f"wire group size must be >= 1, got {self.group_size}")

    @property
    def bits(self) -> int:
        return {"fp32": 32, "fp16": 16, "int8": 8, "int6": 6, "int4": 4}[self.name]

    def message_bytes(self, numel: int) -> int:
        """Bytes on the wire for one message of `numel` values."""
        payload = math.ceil(numel * self.bits / 8)
        if self.name.startswith("int"):
            payload += 2 * math.ceil(numel / self.group_size)  # fp16 scale per group
        return payload


def quantize(message: torch.Tensor, fmt: WireFormat) -> torch.Tensor:
    """Round-trip `message` [B, ...] through the wire format (what the receiver side decodes)."""
    if fmt.name == "fp32":
        return message
    if fmt.name == "fp16":
        return message.half().to(message.dtype)
    shape = message.shape
    flat = message.reshape(shape[0], -1)
    pad = (-flat.shape[1]) % fmt.group_size
    groups = torch.nn.functional.pad(flat, (0, pad)).view(shape[0], -1, fmt.group_size)
    qmax = 2 ** (fmt.bits - 1) - 1
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / qmax
    scale = scale.half().float()  # the scale itself travels as fp16
    q = torch.clamp(torch.round(groups / scale), -qmax, qmax)
    out = (q * scale).view(shape[0], -1)[:, : flat.shape[1]]
    return out.reshape(shape).to(message.dtype)
