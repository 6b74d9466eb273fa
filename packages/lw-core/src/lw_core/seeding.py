"""Seed every random number generator lw touches."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); returns a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(seed)


def stratified_subset(labels: list[int], n: int, seed: int) -> list[int]:
    """Indices of a seeded, class-stratified sample of `n` items (all indices, in order, if n >= len)."""
    if n >= len(labels):
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    chosen: list[int] = []
    classes = sorted(by_class)
    # Largest-remainder allocation keeps each class's share.
    quotas = {c: n * len(by_class[c]) / len(labels) for c in classes}
    counts = {c: int(quotas[c]) for c in classes}
    for c in sorted(classes, key=lambda c: quotas[c] - counts[c], reverse=True)[: n - sum(counts.values())]:
        counts[c] += 1
    for c in classes:
        members = by_class[c]
        chosen.extend(members[i] for i in rng.permutation(len(members))[: counts[c]])
    return sorted(chosen)
