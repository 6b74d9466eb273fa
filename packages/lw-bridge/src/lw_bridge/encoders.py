"""Encoders: sender hidden states [B, T, d_sender] (+ mask) → message Z [B, M, d_z].

Sender states have wildly different scales per layer (smollm2 layer 15 has RMS ≈ 285), so every
encoder first RMS-normalises each state, standardises it per feature with statistics of the train
split (`fit_input_statistics`), and then applies a learned LayerNorm. An encoder that reads several
sender layers gets states [B, T, L, d_sender]; each layer is normalised on its own, then a learned
softmax over the L layers mixes them (ELMo-style scalar mix) before the LayerNorm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from lw_core import Registry
from lw_core.errors import LwError
from torch import nn


@dataclass
class EncoderConfig:
    kind: str = field(default="perceiver", metadata={"help": "encoder: perceiver | meanpool | linear | bytes"})
    num_latents: int = field(default=8, metadata={"help": "M: vectors in the message"})
    d_z: int = field(default=32, metadata={"help": "width of each message vector"})
    d_model: int = field(default=256, metadata={"help": "encoder's internal width"})
    depth: int = field(default=2, metadata={"help": "perceiver blocks (cross-attention, self-attention, MLP)"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    dropout: float = field(default=0.0, metadata={"help": "dropout inside the encoder"})
    sender_layers: int = field(default=1, metadata={"help": "sender layers read per token (mixed by learned weights)"})

    @property
    def message_numel(self) -> int:
        """Numbers in one message Z (M × d_z): what goes on the wire."""
        return self.num_latents * self.d_z

    def __post_init__(self):
        for name in ("num_latents", "d_z", "d_model", "depth", "heads", "sender_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")


ENCODERS: Registry[type[nn.Module]] = Registry("encoder")


def rms_normalise(states: torch.Tensor) -> torch.Tensor:
    return states / states.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()


class InputNorm(nn.Module):
    """Per-state RMS normalisation (scale-free), per-feature standardisation, a learned LayerNorm and a
    projection. The standardisation is the identity until `fit` sets it from train states. With
    `n_layers` > 1 the states are [..., L, d_in]: standardised per layer, then mixed by softmax weights."""

    def __init__(self, d_in: int, d_out: int, n_layers: int = 1):
        super().__init__()
        shape = (d_in,) if n_layers == 1 else (n_layers, d_in)
        self.register_buffer("center", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))
        self.mix = nn.Parameter(torch.zeros(n_layers)) if n_layers > 1 else None
        self.norm = nn.LayerNorm(d_in)
        self.proj = nn.Linear(d_in, d_out)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = (rms_normalise(states) - self.center) * self.scale
        if self.mix is not None:
            x = (x * self.layer_weights()[:, None]).sum(-2)
        return self.proj(self.norm(x))

    def layer_weights(self) -> torch.Tensor:
        """The softmax mixture over the sender layers ([1.0] for one layer)."""
        return torch.ones(1) if self.mix is None else torch.softmax(self.mix, dim=0)

    @torch.no_grad()
    def fit(self, states: Iterable[torch.Tensor]) -> None:
        """Per-feature mean and 1/std of the RMS-normalised states. An LM's states share one dominant
        direction (mean-pooled smollm2 layer-15 states of different rt snippets have cosine ≈ 0.95);
        left in, it makes every input's message alike at initialisation and training starts collapsed."""
        total = torch.zeros_like(self.center, dtype=torch.float64)
        square, count = torch.zeros_like(total), 0
        for s in states:
            x = rms_normalise(s.to(self.center.device, torch.float64).reshape(-1, *self.center.shape))
            total += x.sum(0)
            square += x.pow(2).sum(0)
            count += x.shape[0]
        if count < 2:
            raise LwError("cannot standardise sender states: fewer than 2 states in the train split")
        mean = total / count
        std = (square / count - mean.pow(2)).clamp(min=1e-8).sqrt()
        self.center.copy_(mean.float())
        self.scale.copy_(std.clamp(min=1e-4).reciprocal().float())


class PerceiverBlock(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.cross_norm, self.cross = nn.LayerNorm(d), nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.self_norm, self.self_attn = nn.LayerNorm(d), nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.mlp_norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))

    def forward(self, latents: torch.Tensor, context: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        q = self.cross_norm(latents)
        latents = latents + self.cross(q, context, context, key_padding_mask=pad, need_weights=False)[0]
        q = self.self_norm(latents)
        latents = latents + self.self_attn(q, q, q, need_weights=False)[0]
        return latents + self.mlp(self.mlp_norm(latents))


@ENCODERS.register("perceiver")
class PerceiverResampler(nn.Module):
    """Learned queries cross-attend to the sender states (Flamingo / Telepathy style)."""

    def __init__(self, d_sender: int, config: EncoderConfig):
        super().__init__()
        self.inp = InputNorm(d_sender, config.d_model, config.sender_layers)
        self.latents = nn.Parameter(torch.randn(config.num_latents, config.d_model) * 0.02)
        self.blocks = nn.ModuleList(PerceiverBlock(config.d_model, config.heads, config.dropout) for _ in range(config.depth))
        self.out = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.d_z))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = self.inp(states)
        latents = self.latents.expand(states.shape[0], -1, -1)
        pad = mask == 0
        for block in self.blocks:
            latents = block(latents, context, pad)
        return self.out(latents)


@ENCODERS.register("meanpool")
class MeanPoolMLP(nn.Module):
    """Masked mean of the states, then an MLP to M vectors (ablation: no attention)."""

    def __init__(self, d_sender: int, config: EncoderConfig):
        super().__init__()
        self.inp = InputNorm(d_sender, config.d_model, config.sender_layers)
        self.m, self.d_z = config.num_latents, config.d_z
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(config.d_model, config.d_model), nn.GELU(),
                                 nn.Linear(config.d_model, config.message_numel))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.inp(states)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.mlp(pooled).view(-1, self.m, self.d_z)


@ENCODERS.register("linear")
class LastStatesLinear(nn.Module):
    """A linear projection of the last M (real, unpadded) states (ablation: no pooling, no attention)."""

    def __init__(self, d_sender: int, config: EncoderConfig):
        super().__init__()
        self.m = config.num_latents
        self.inp = InputNorm(d_sender, config.d_z, config.sender_layers)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1)
        offsets = torch.arange(-self.m, 0, device=states.device)
        index = (lengths[:, None] + offsets).clamp(min=0)  # short inputs repeat their first state
        rows = torch.arange(states.shape[0], device=states.device)[:, None]
        return self.inp(states[rows, index])


@ENCODERS.register("bytes")
class ByteEncoder(nn.Module):
    """Reads the input's UTF-8 bytes directly (no sender LM): the interlingua's text encoder.
    Its 'states' are byte ids [B, T] (as float-free LongTensor) with a mask."""

    vocab = 257  # 256 bytes + padding

    def __init__(self, d_sender: int, config: EncoderConfig):
        super().__init__()
        if config.sender_layers != 1:
            raise LwError("the bytes encoder reads no sender layers (leave --layers empty)")
        self.embed = nn.Embedding(self.vocab, config.d_model, padding_idx=256)
        self.pos = nn.Embedding(4096, config.d_model)
        layer = nn.TransformerEncoderLayer(config.d_model, config.heads, 4 * config.d_model, config.dropout,
                                           batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, num_layers=config.depth, enable_nested_tensor=False)
        self.resampler = PerceiverResampler(config.d_model, config)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids = states.long()
        positions = torch.arange(ids.shape[1], device=ids.device).clamp(max=4095)
        x = self.body(self.embed(ids) + self.pos(positions), src_key_padding_mask=mask == 0)
        return self.resampler(x, mask)


def bytes_of(texts: list[str], max_bytes: int = 1024) -> list[torch.Tensor]:
    """The byte ids the `bytes` encoder reads, one 1-D LongTensor per text."""
    return [torch.tensor(list(t.encode("utf-8")[:max_bytes]) or [32], dtype=torch.long) for t in texts]


def fit_input_statistics(encoder: nn.Module, states: Iterable[torch.Tensor]) -> None:
    """Standardise a sender-state encoder's input with statistics of these (train) states."""
    if not isinstance(getattr(encoder, "inp", None), InputNorm):
        raise LwError(f"encoder {type(encoder).__name__} does not read sender states; nothing to standardise")
    encoder.inp.fit(states)


def build_encoder(d_sender: int, config: EncoderConfig) -> nn.Module:
    if config.kind not in ENCODERS:
        raise LwError(f"unknown encoder {config.kind!r}; known: {', '.join(ENCODERS.names())}")
    return ENCODERS.get(config.kind)(d_sender, config)
