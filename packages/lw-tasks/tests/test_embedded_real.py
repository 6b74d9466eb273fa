"""Slow: the real embedded corpora (the `data` extra) and the real embedded models (lw-core `assets`)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from lw_tasks import SPLITS, ZeroShotScorer, evaluate, load_task, result_from_scores
from lw_tasks.scoring import ContextualCalibration, calibrate_scores
from lw_tasks.splits import normalize_text

pytestmark = pytest.mark.slow

# Documented in the README; identical on every run and every machine (sha256 of each split's example ids, in order).
EXPECTED = {
    "rt-sentiment": ({"train": 10201, "validation": 1275, "test": 1275}, ("16447f267ae1", "59daeb3c1d60", "abd59751b2b1")),
    "20ng": ({"train": 10720, "validation": 500, "test": 1000}, ("4c616700a351", "b753b8ba2709", "91c6e579dd47")),
    "20ng-full": ({"train": 10720, "validation": 500, "test": 7487}, ("4c616700a351", "b753b8ba2709", "7b35e570ef9b")),
    "r8": ({"train": 4909, "validation": 500, "test": 1000}, ("280ba1ad014a", "481432a5ba97", "5262db5a50ad")),
    "r8-full": ({"train": 4909, "validation": 500, "test": 2174}, ("280ba1ad014a", "481432a5ba97", "385857fb4f55")),
    "r52": ({"train": 5930, "validation": 500, "test": 1000}, ("278daf8318b2", "a829c42fc9fd", "c70270d815ff")),
    "r52-full": ({"train": 5930, "validation": 500, "test": 2550}, ("278daf8318b2", "a829c42fc9fd", "31651276caff")),
    "squad-olmes": ({"train": 798, "validation": 100, "test": 100}, ("1eb193130ebd", "8da214d168a3", "3e71b718c64f")),
    "arc-easy-olmes": ({"train": 2346, "validation": 293, "test": 293}, ("cd3dcc13e929", "e6121a7a5407", "ca7bb59f709e")),
    "arc-challenge-olmes": ({"train": 1166, "validation": 147, "test": 147},
                            ("7c14d4b1d7d9", "bdab2d848372", "ede8a3741ff5")),
    "openbookqa-olmes": ({"train": 802, "validation": 99, "test": 99}, ("cc84c1b28425", "01ba812601c4", "30a0de5f6404")),
    "csqa-olmes": ({"train": 975, "validation": 123, "test": 123}, ("a581afb6ea24", "2de649df7252", "242ae7fb1853")),
    "boolq-olmes": ({"train": 2616, "validation": 327, "test": 327}, ("316c0457a14d", "fca7a77506b0", "ce77e25c85e0")),
}
ANSWERS = {"rt-sentiment": 2, "20ng": 20, "20ng-full": 20, "r8": 8, "r8-full": 8, "r52": 52, "r52-full": 52,
           "squad-olmes": 0, "arc-easy-olmes": 4, "arc-challenge-olmes": 4, "openbookqa-olmes": 4, "csqa-olmes": 5, "boolq-olmes": 2}


def fingerprint(task, split: str) -> str:
    return hashlib.sha256("\n".join(e.id for e in task.split(split)).encode()).hexdigest()[:12]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_embedded_task_splits(name):
    sizes, prints = EXPECTED[name]
    task = load_task(name)
    assert task.sizes() == sizes
    assert tuple(fingerprint(task, s) for s in SPLITS) == prints
    keys = {s: {normalize_text(e.text) for e in task.split(s)} for s in SPLITS}
    assert not keys["train"] & keys["test"] and not keys["validation"] & keys["test"] and not keys["train"] & keys["validation"]
    assert all(len(e.text.split()) <= task.max_input_words for s in SPLITS for e in task.split(s))
    assert len(task.answers) == ANSWERS[name]
    if task.kind == "generative":  # every reference answer is still in the (truncated) passage
        assert all(any(normalize_text(r) in normalize_text(e.text) for r in e.references) for s in SPLITS
                   for e in task.split(s))


def test_answer_names_come_from_the_data():
    assert load_task("20ng").answers[:3] == ["alt.atheism", "comp.graphics", "comp.os.ms-windows.misc"]
    assert load_task("r8").answers == ["acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade"]
    assert load_task("rt-sentiment").verbalizer_map == {"negative": " negative", "positive": " positive"}


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_real_zero_shot_small(model):
    from lw_core import FrozenLM

    torch.set_num_threads(1)
    lm = FrozenLM.load(model)
    task = load_task("rt-sentiment")
    raw = evaluate(ZeroShotScorer(lm), task, limit=16, batch_size=8, progress=False)
    assert raw.metrics["n"] == 16 and raw.metrics["invalid_rate"] == 0.0 and raw.scores.isfinite().all()
    offset = ContextualCalibration(ZeroShotScorer(lm)).offset(task)
    calibrated = result_from_scores(task, "test", task.split("test")[:16], calibrate_scores(raw.scores, offset))
    direct = evaluate(ZeroShotScorer(lm, calibrate=True), task, limit=16, batch_size=16, progress=False)
    assert calibrated.metrics["accuracy"] == direct.metrics["accuracy"]
    assert torch.allclose(calibrated.scores, direct.scores, atol=1e-4)
