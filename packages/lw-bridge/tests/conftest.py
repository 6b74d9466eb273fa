import csv
import random

import pytest
import torch
from lw_core.testing import tiny_gemma3, tiny_llama

torch.set_num_threads(1)

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming", "superb", "delightful"]
NEGATIVE = ["awful", "boring", "dull", "tedious", "messy", "clumsy", "bland", "painful"]


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """The tiny Llama (sender) and tiny Gemma3 (receiver) saved as HF folders, loaded like any model."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, factory in (("sender", tiny_llama), ("receiver", tiny_gemma3)):
        lm = factory()
        lm.model.save_pretrained(root / name)
        lm.tokenizer.save_pretrained(root / name)
        out[name] = str(root / name)
    return out


@pytest.fixture(scope="session")
def toy_task_file(tmp_path_factory):
    """A small sentiment CSV whose label is decided by one word in the text (learnable by a bridge)."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(240):
            label = "positive" if i % 2 else "negative"
            word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
            writer.writerow([f"review {i}: the film was {word} overall", label])
    return str(path)
