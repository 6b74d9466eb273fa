"""Wire codec for latent messages: fp32/fp16 or symmetric group-wise integer quantisation
(int8 / int6 / int4), with an honest byte count (packed values + one fp16 scale per group).

`quantize` round-trips a message in memory; `to_bytes` / `from_bytes` are the same codec as bytes on a
real wire (exactly `message_bytes` long, decoding to exactly what `quantize` gives)."""

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


def _int_codes(message: torch.Tensor, fmt: WireFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes [B, numel] in [-qmax, qmax] and fp16-representable scales [B, groups] of a message."""
    flat = message.reshape(message.shape[0], -1)
    pad = (-flat.shape[1]) % fmt.group_size
    groups = torch.nn.functional.pad(flat, (0, pad)).view(flat.shape[0], -1, fmt.group_size)
    qmax = 2 ** (fmt.bits - 1) - 1
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / qmax
    scale = scale.half().float()  # the scale itself travels as fp16
    q = torch.clamp(torch.round(groups / scale), -qmax, qmax)
    return q.view(flat.shape[0], -1)[:, : flat.shape[1]], scale[..., 0]


def _dequantize(codes: torch.Tensor, scale: torch.Tensor, fmt: WireFormat) -> torch.Tensor:
    numel = codes.shape[1]
    pad = (-numel) % fmt.group_size
    groups = torch.nn.functional.pad(codes, (0, pad)).view(codes.shape[0], -1, fmt.group_size)
    return (groups * scale[..., None]).view(codes.shape[0], -1)[:, :numel]


def quantize(message: torch.Tensor, fmt: WireFormat) -> torch.Tensor:
    """Round-trip `message` [B, ...] through the wire format (what the receiver side decodes)."""
    if fmt.name == "fp32":
        return message
    if fmt.name == "fp16":
        return message.half().to(message.dtype)
    codes, scale = _int_codes(message, fmt)
    return _dequantize(codes, scale, fmt).reshape(message.shape).to(message.dtype)


def _pack_bits(values: torch.Tensor, bits: int) -> bytes:
    """Unsigned values [N] (each < 2**bits) as a big-endian bit stream, zero-padded to whole bytes."""
    shifts = torch.arange(bits - 1, -1, -1)
    stream = ((values[:, None].long() >> shifts) & 1).reshape(-1)
    stream = torch.nn.functional.pad(stream, (0, (-stream.numel()) % 8)).view(-1, 8)
    return bytes((stream << torch.arange(7, -1, -1)).sum(dim=1).to(torch.uint8).tolist())


def _unpack_bits(data: bytes, bits: int, count: int) -> torch.Tensor:
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    stream = ((raw[:, None] >> torch.arange(7, -1, -1)) & 1).reshape(-1)[: count * bits].view(count, bits)
    return (stream << torch.arange(bits - 1, -1, -1)).sum(dim=1)


def to_bytes(message: torch.Tensor, fmt: WireFormat) -> list[bytes]:
    """Each example of `message` [B, ...] as `fmt.message_bytes(numel)` bytes: little-endian floats for
    fp32/fp16; for intN the groups' fp16 scales, then the codes offset by 2**(bits-1), bit-packed."""
    flat = message.detach().reshape(message.shape[0], -1).cpu()
    if fmt.name in ("fp32", "fp16"):
        dtype = torch.float32 if fmt.name == "fp32" else torch.float16
        return [bytes(row.to(dtype).contiguous().view(torch.uint8).tolist()) for row in flat]
    codes, scale = _int_codes(flat, fmt)
    offset = 2 ** (fmt.bits - 1)
    return [bytes(s.half().contiguous().view(torch.uint8).tolist()) + _pack_bits((c + offset).long(), fmt.bits)
            for c, s in zip(codes, scale, strict=True)]


def from_bytes(payloads: list[bytes], fmt: WireFormat, shape: tuple[int, ...]) -> torch.Tensor:
    """Messages [B, *shape] float32 from `to_bytes`' payloads; one-line LwError on a payload of the wrong
    length for `shape` at `fmt`. Values may be non-finite if the sender sent them so: check them."""
    numel = math.prod(shape)
    want = fmt.message_bytes(numel)
    rows = []
    for i, data in enumerate(payloads):
        if len(data) != want:
            raise LwError(f"message {i} has {len(data)} bytes; a {'x'.join(map(str, shape))} message at "
                          f"{fmt.name} (group size {fmt.group_size}) has {want}")
        if fmt.name in ("fp32", "fp16"):
            dtype = torch.float32 if fmt.name == "fp32" else torch.float16
            rows.append(torch.frombuffer(bytearray(data), dtype=dtype).float())
            continue
        n_scales = math.ceil(numel / fmt.group_size)
        scale = torch.frombuffer(bytearray(data[: 2 * n_scales]), dtype=torch.float16).float()
        codes = _unpack_bits(data[2 * n_scales :], fmt.bits, numel).float() - 2 ** (fmt.bits - 1)
        rows.append(_dequantize(codes[None], scale[None], fmt)[0])
    if not rows:
        return torch.zeros(0, *shape)
    return torch.stack(rows).view(len(rows), *shape)
