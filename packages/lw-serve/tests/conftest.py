import csv
import random

import pytest
import torch
from lw_bridge import trainer
from lw_bridge.config import TrainConfig
from lw_core.testing import save_tiny_pair

torch.set_num_threads(1)

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming"]
NEGATIVE = ["awful", "boring", "dull", "tedious", "messy", "clumsy"]
SAMPLE_TEXTS = ["review 1: the film was great overall", "review 2: the film was dull overall", "a brilliant, charming one",
         "Ünïcödé 日本語 — still a text", "x"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A tiny bridge (tiny Llama sender, tiny Gemma3 receiver) trained a few steps, its run's wire int8."""
    root = tmp_path_factory.mktemp("serve")
    models = save_tiny_pair(root / "models")
    rng = random.Random(0)
    task_file = root / "toy.csv"
    with open(task_file, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(120):
            label = "positive" if i % 2 else "negative"
            word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
            writer.writerow([f"review {i}: the film was {word} overall", label])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LW_CACHE", str(root / "cache"))
        patch.setenv("LW_RUNS", str(root / "runs"))
        trainer.train(TrainConfig(
            task=str(task_file), sender=models["sender"], receivers=[models["receiver"]], layer=2, steps=4,
            batch_size=8, eval_every=4, lr=3e-3, d_model=32, depth=1, heads=2, num_latents=4, num_soft_tokens=4,
            d_z=8, device="cpu", output_dir=str(root / "run"), max_validation_examples=8, compare_zero_shot=False,
            wire_formats=["int8"]))
    return root / "run"


@pytest.fixture(scope="session")
def texts():
    return list(SAMPLE_TEXTS)
