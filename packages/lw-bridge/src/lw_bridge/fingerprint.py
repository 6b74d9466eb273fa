"""A small record of which model a component was trained against, to check that a model handed in
later is the same one: architecture, widths, the tokenizer's ids for a fixed probe text and a sample
of the input-embedding matrix.

The embedding sample is compared with a relative tolerance rather than hashed: the same weights loaded
in fp32, bf16 or fp16 differ in their last bits (fp16 even flushes the smallest values), while a
different model, or a different quantisation of the same one, differs far more.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from lw_core.lm import FrozenLM

PROBE_TEXT = "The quick brown fox, 1234 naïve 日本語 résumé.\nAnswer: positive"
SAMPLE_SIZE = 64
RELATIVE_TOLERANCE = 0.02
"""Largest difference allowed between two embedding samples, relative to the sample's largest value
(bf16 keeps 8 significant bits, about 0.4 %)."""


def _embedding_sample(lm: FrozenLM) -> list[float]:
    """SAMPLE_SIZE values of the (unscaled) input-embedding matrix at fixed positions spread over it."""
    weight = lm.model.get_input_embeddings().weight
    rows, cols = weight.shape
    index = torch.arange(SAMPLE_SIZE)
    row = (index * rows) // SAMPLE_SIZE + index % 7
    col = (index * 7919) % cols
    values = weight.detach()[row.clamp(max=rows - 1).to(weight.device), col.to(weight.device)]
    return [round(v, 7) for v in values.float().cpu().tolist()]


def _probe_digest(lm: FrozenLM) -> str:
    ids = lm.tokenizer(PROBE_TEXT)["input_ids"]
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def fingerprint(lm: FrozenLM) -> dict[str, Any]:
    """What identifies `lw`'s view of a model: JSON-ready, a few hundred bytes."""
    return {
        "model_type": getattr(lm.config, "model_type", None),
        "hidden_size": lm.hidden_size,
        "vocab_size": lm.vocab_size,
        "num_layers": lm.num_layers,
        "tokenizer_probe": _probe_digest(lm),
        "embedding_sample": _embedding_sample(lm),
    }


def fingerprint_mismatch(expected: dict[str, Any], lm: FrozenLM) -> str | None:
    """None if `lm` matches `expected` (a `fingerprint` recorded earlier), else what differs, in words."""
    actual = fingerprint(lm)
    for key, what in (("model_type", "architecture"), ("hidden_size", "hidden size"), ("vocab_size", "vocabulary size"),
                      ("num_layers", "layer count")):
        if key in expected and expected[key] != actual[key]:
            return f"{what} {actual[key]} where it was trained with {expected[key]}"
    if "tokenizer_probe" in expected and expected["tokenizer_probe"] != actual["tokenizer_probe"]:
        return "its tokenizer splits a probe text differently from the one it was trained with"
    if "embedding_sample" in expected:
        want = torch.tensor(expected["embedding_sample"], dtype=torch.float64)
        got = torch.tensor(actual["embedding_sample"], dtype=torch.float64)
        if want.shape != got.shape:
            return "its embedding sample has another size"
        scale = want.abs().max().clamp(min=1e-12)
        worst = ((want - got).abs().max() / scale).item()
        if worst > RELATIVE_TOLERANCE:
            return f"its embedding weights differ from the ones it was trained with (by {worst:.0%} of their range)"
    return None
