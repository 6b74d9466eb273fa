"""Latency as the input grows: each path at batch 1 on texts cut to each length (receiver tokens),
a least-squares line per path, and the length where the bridge and the receiver reading the text cost
the same."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from lw_core import FrozenLM
from lw_tasks import Example

from lw_bench.latency import Path_, time_path


def cut_to_tokens(lm: FrozenLM, examples: Sequence[Example], length: int, count: int) -> list[Example]:
    """`count` examples whose text is cut to exactly `length` tokens of `lm` (texts repeated to reach it)."""
    out = []
    for e in examples:
        ids = lm.token_ids(e.text)
        if not ids:
            continue
        while len(ids) < length:
            ids = ids + lm.token_ids(" " + e.text)
        out.append(dataclasses.replace(e, text=lm.tokenizer.decode(ids[:length])))
        if len(out) == count:
            break
    return out


def fit_line(lengths: Sequence[int], ms: Sequence[float]) -> dict[str, float]:
    slope, intercept = np.polyfit(np.asarray(lengths, float), np.asarray(ms, float), 1)
    return {"ms_per_token": float(slope), "intercept_ms": float(intercept)}


def crossover(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Input length where lines a and b meet (None if parallel)."""
    dslope = a["ms_per_token"] - b["ms_per_token"]
    return None if abs(dslope) < 1e-12 else (b["intercept_ms"] - a["intercept_ms"]) / dslope


def bench_scaling(paths: Sequence[Path_], examples: Sequence[Example], lm: FrozenLM, lengths: Sequence[int], *,
                  device: str = "cpu", examples_per_length: int = 4, repeats: int = 4) -> dict[str, Any]:
    """p50 latency of each path at each length, each path's fitted line, and where bridge = direct."""
    points: dict[str, list[float]] = {getattr(p, "name", str(p)): [] for p in paths}
    for length in lengths:
        cut = cut_to_tokens(lm, examples, length, examples_per_length)
        for path in paths:
            times = time_path(path, cut, device=device, warmup=1, repeats=repeats)
            points[times.name].append(times.latency_ms["p50"])
    fits = {name: fit_line(lengths, ms) for name, ms in points.items()}
    out: dict[str, Any] = {"lengths": list(lengths), "p50_ms": points, "fits": fits}
    if "bridge" in fits and "direct" in fits:
        out["bridge_equals_direct_at_tokens"] = crossover(fits["bridge"], fits["direct"])
        cheaper = [n for n, b, d in zip(lengths, points["bridge"], points["direct"], strict=True) if b < d]
        out["bridge_cheaper_at_measured_lengths"] = cheaper
    return out
