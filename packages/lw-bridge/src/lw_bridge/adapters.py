"""Adapters: message Z [B, M, d_z] → K soft tokens in one receiver's input-embedding space,
calibrated per example to the RMS that receiver's first layer sees for real text tokens (`calibrate`;
off, the MLP's output goes in as it is: the ablation)."""

from __future__ import annotations

import torch
from torch import nn

from lw_bridge.encoders import rms_normalise


class Adapter(nn.Module):
    def __init__(self, d_z: int, num_latents: int, d_receiver: int, num_soft_tokens: int, target_rms: float,
                 hidden: int = 512, calibrate: bool = True):
        super().__init__()
        self.num_soft_tokens, self.calibrate = num_soft_tokens, calibrate
        # Positions: K soft tokens as learned mixtures of the M message vectors (identity-initialised when K == M).
        mix = torch.eye(num_soft_tokens, num_latents) if num_soft_tokens == num_latents else torch.randn(
            num_soft_tokens, num_latents) / num_latents**0.5
        self.mix = nn.Parameter(mix)
        self.mlp = nn.Sequential(nn.Linear(d_z, hidden), nn.GELU(), nn.Linear(hidden, d_receiver))
        self.position = nn.Parameter(torch.zeros(num_soft_tokens, d_receiver))
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))
        self.log_scale = nn.Parameter(torch.zeros(()))  # learned scale around the receiver's RMS

    def forward(self, message: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("km,bmd->bkd", self.mix, message)
        tokens = self.mlp(mixed) + self.position
        if not self.calibrate:
            return tokens
        return rms_normalise(tokens) * self.target_rms * self.log_scale.exp()
