"""The zero-shot methods registered in lw-tasks: through the one runner they score what `zero_shot_scorer`
scores, and `reference_scorer` (lw-train's reference row) is `zero-shot-calibrated`'s scorer, answering a
generative task with the caller's `max_new_tokens`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lw_tasks import Example, GenerationScorer, Task, ZeroShotScorer, evaluate, zero_shot_scorer
from lw_tasks.methods import METHODS, Models
from lw_tasks.runner import run_method
from lw_tasks.zero_shot import ZERO_SHOT, ZERO_SHOT_CALIBRATED, ZeroShotConfig, reference_scorer


def make_task(kind: str = "classification") -> Task:
    generative = kind == "generative"
    examples = [Example(id=f"e{i}", text=f"text number {i}", label=None if generative else i % 2,
                        references=(f"a{i}",) if generative else ()) for i in range(8)]
    answers = ([], []) if generative else (["negative", "positive"], [" negative", " positive"])
    return Task(name="toy", description="", kind=kind, answers=answers[0], verbalizers=answers[1],
                template="Review: {text}\nSentiment:", max_input_words=8,
                splits={"train": examples, "validation": examples[:4], "test": examples})  # fmt: skip


def test_zero_shot_methods_are_registered_beside_the_protocol():
    assert METHODS.get("zero-shot") is ZERO_SHOT and METHODS.get("zero-shot-calibrated") is ZERO_SHOT_CALIBRATED
    assert ZERO_SHOT.deterministic and ZERO_SHOT.view is not None


def test_the_runner_scores_what_zero_shot_scorer_scores(tiny_lm, tmp_path):
    task = make_task()
    config = ZeroShotConfig(model="tiny", device="cpu", dtype="fp32", progress=False, eval_batch_size=4)
    models = Models("cpu", "fp32", preloaded={"tiny": tiny_lm})
    for method, calibrate in ((ZERO_SHOT, False), (ZERO_SHOT_CALIBRATED, True)):
        result = run_method(method, config, task=task, models=models, output_dir=tmp_path / method.name)
        direct = evaluate(zero_shot_scorer(tiny_lm, task, calibrate=calibrate), task, "test", batch_size=4,
                          progress=False)
        assert result["accuracy"] == direct.metrics["accuracy"] and result["nll"] == direct.metrics["nll"]


def test_reference_scorer_is_the_calibrated_method(tiny_lm):
    task = make_task()
    scorer = reference_scorer(tiny_lm, task, ZeroShotConfig())
    assert isinstance(scorer, ZeroShotScorer)
    expected = zero_shot_scorer(tiny_lm, task, calibrate=True).score(task, task.split("test"))
    assert torch.equal(scorer.score(task, task.split("test")), expected)


def test_reference_scorer_generates_the_callers_max_new_tokens(tiny_lm):
    @dataclass
    class Caller:
        max_new_tokens: int = 3

    scorer = reference_scorer(tiny_lm, make_task("generative"), Caller())
    assert isinstance(scorer, GenerationScorer) and scorer.max_new_tokens == 3
    assert reference_scorer(tiny_lm, make_task("generative"), ZeroShotConfig()).max_new_tokens == 16
