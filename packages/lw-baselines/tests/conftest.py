import random

import pytest
import torch
from lw_baselines.common import Models
from lw_core.testing import tiny_gemma3, tiny_llama
from lw_tasks import Example, Task

torch.set_num_threads(1)

POSITIVE = ["good", "great", "fine", "nice", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "ugly", "weak"]


def make_examples(prefix: str, n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = rng.sample(POSITIVE if label else NEGATIVE, 2) + rng.sample(["the", "film", "was", "plot", "a"], 2)
        rng.shuffle(words)
        out.append(Example(id=f"{prefix}{i}", text=" ".join(words), label=label))
    return out


def make_task(cls=Task) -> Task:
    return cls(
        name="tiny",
        description="tiny in-memory sentiment task",
        kind="classification",
        answers=["negative", "positive"],
        verbalizers=[" no", " yes"],
        template="Text: {text}\nGood?",
        splits={"train": make_examples("tr", 24, 0), "validation": make_examples("va", 12, 1),
                "test": make_examples("te", 10, 2)},
        max_input_words=16,
    )


@pytest.fixture(scope="session")
def sender():
    return tiny_llama()


@pytest.fixture(scope="session")
def receiver():
    return tiny_gemma3()


@pytest.fixture
def task():
    return make_task()


@pytest.fixture
def task_factory():
    return make_task


@pytest.fixture
def models(sender, receiver):
    return Models(device="cpu", preloaded={"tiny-llama": sender, "tiny-gemma3": receiver})


@pytest.fixture
def common(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("LW_CACHE", str(tmp_path / "cache"))
    return {"task": "tiny", "sender": "tiny-llama", "receiver": "tiny-gemma3", "device": "cpu", "eval_batch_size": 4,
            "progress": False}
