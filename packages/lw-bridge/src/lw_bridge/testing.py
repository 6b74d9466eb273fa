"""A tiny trained bridge run for tests of the packages that use one (serving, benchmarks): the tiny Llama
sender and tiny Gemma3 receiver from `lw_core.testing`, a toy sentiment CSV decided by one word, and a
few training steps on a CPU (seconds); a toy two-field QA task (passage and question) for the QA layouts
(`lw_tasks.testing.toy_qa_task`, which the baselines' tests share)."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

from lw_core.testing import save_tiny_pair
from lw_tasks.testing import toy_qa_task

__all__ = ["toy_qa_task", "toy_sentiment_csv", "train_tiny_run"]

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming"]
NEGATIVE = ["awful", "boring", "dull", "tedious", "messy", "clumsy"]


def toy_sentiment_csv(path: Path, rows: int = 120, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = "positive" if i % 2 else "negative"
            word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
            writer.writerow([f"review {i}: the film was {word} overall", label])
    return path


def train_tiny_run(root: Path, wire_formats: list[str] | None = None, steps: int = 4) -> Path:
    """A run directory under `root` (models, data, cache and runs there too); returns it."""
    from lw_bridge import trainer
    from lw_bridge.config import TrainConfig

    models = save_tiny_pair(root / "models")
    task_file = toy_sentiment_csv(root / "toy.csv")
    saved = {k: os.environ.get(k) for k in ("LW_CACHE", "LW_RUNS")}
    os.environ.update(LW_CACHE=str(root / "cache"), LW_RUNS=str(root / "runs"))
    try:
        trainer.train(TrainConfig(
            task=str(task_file), sender=models["sender"], receivers=[models["receiver"]], layer=2, steps=steps,
            batch_size=8, eval_every=steps, lr=3e-3, d_model=32, depth=1, heads=2, num_latents=4, num_soft_tokens=4,
            d_z=8, device="cpu", output_dir=str(root / "run"), max_validation_examples=8, compare_zero_shot=False,
            wire_formats=list(wire_formats or [])))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return root / "run"
