"""Zero-shot scoring, contextual calibration and the generated-text parser, on tiny random models."""

from __future__ import annotations

import re

import pytest
import torch
from lw_core.errors import LwError
from lw_core.testing import tiny_gemma3
from lw_tasks import (
    ContextualCalibration,
    Example,
    GenerationScorer,
    Task,
    ZeroShotScorer,
    answer_rule_hint,
    apply_answer_rule,
    calibrate_scores,
    calibration_offset,
    evaluate,
    parse_answer,
    resolve_answer_rule,
)


def make_task(n: int = 6) -> Task:
    examples = [Example(id=str(i), text=f"text number {i} is {'nice' if i % 2 else 'bad'}", label=i % 2) for i in range(n)]
    return Task(
        name="toy", description="toy", kind="classification", answers=["negative", "positive"],
        verbalizers=[" negative", " very positive"], template="Review: {text}\nSentiment:",
        splits={"train": examples, "validation": examples, "test": examples}, max_input_words=16,
    )  # fmt: skip


@pytest.fixture(params=["tiny_lm", "tiny_gemma"])
def lm(request):
    return request.getfixturevalue(request.param)


def test_zero_shot_scores_are_answer_logprobs(lm):
    task = make_task()
    examples = task.split("test")[:3]
    scores = ZeroShotScorer(lm).score(task, examples)
    assert scores.shape == (3, 2) and (scores < 0).all()
    # the same number as summing the verbalizer's token log-probs after the prompt by hand
    for i, example in enumerate(examples):
        ids, _ = lm.tokenize([task.prompt(example)])
        for a, verbalizer in enumerate(task.verbalizers):
            answer = torch.tensor([lm.token_ids(verbalizer)])
            full = torch.cat([ids, answer], dim=1)
            with torch.no_grad():
                logp = torch.log_softmax(lm.model(input_ids=full).logits.float(), -1)[0]
            start = ids.shape[1] - 1
            expected = sum(logp[start + k, t] for k, t in enumerate(answer[0].tolist()))
            assert scores[i, a].item() == pytest.approx(expected.item(), abs=1e-3)


def test_a_prompt_is_scored_once_per_weights_version(tiny_lm, monkeypatch):
    task = make_task()
    examples = task.split("test")
    calls = []
    score_answers = tiny_lm.score_answers
    monkeypatch.setattr(tiny_lm, "score_answers", lambda prefix, answers: calls.append(1) or score_answers(prefix, answers))
    first = ZeroShotScorer(tiny_lm).score(task, examples)
    again = ZeroShotScorer(tiny_lm).score(task, examples[::-1])  # another scorer, another order
    assert len(calls) == 1 and torch.equal(again, first.flip(0))
    with torch.no_grad():
        tiny_lm.model.get_input_embeddings().weight.mul_(1.5)  # the weights changed: score again
    try:
        changed = ZeroShotScorer(tiny_lm).score(task, examples)
        assert len(calls) == 2 and not torch.allclose(changed, first)
    finally:
        with torch.no_grad():
            tiny_lm.model.get_input_embeddings().weight.div_(1.5)
    ZeroShotScorer(tiny_lm, memo=False).score(task, examples)  # asked not to: scores afresh
    assert len(calls) == 3
    weight = tiny_lm.model.get_input_embeddings().weight
    weight.requires_grad_(True)  # trainable weights (LoRA while it trains): never memoised
    try:
        ZeroShotScorer(tiny_lm).score(task, examples)
        ZeroShotScorer(tiny_lm).score(task, examples)
        assert len(calls) == 5
    finally:
        weight.requires_grad_(False)


def test_contextual_calibration(tiny_lm):
    task = make_task()
    raw = ZeroShotScorer(tiny_lm)
    calibrated = ContextualCalibration(raw)
    offset = calibrated.offset(task)
    content_free = raw.score(task, [task.content_free(t) for t in ("N/A", "", "[MASK]")])
    assert torch.allclose(offset, torch.log_softmax(content_free, -1).mean(0))
    examples = task.split("test")
    expected = torch.log_softmax(raw.score(task, examples) - offset, -1)
    assert torch.allclose(calibrated.score(task, examples), expected, atol=1e-5)
    assert torch.allclose(ZeroShotScorer(tiny_lm, calibrate=True).score(task, examples), expected, atol=1e-5)
    # content-free inputs themselves become (nearly) uniform on average
    assert torch.allclose(calibrate_scores(content_free, offset).exp().mean(0), torch.full((2,), 0.5), atol=0.15)


def test_calibration_keeps_invalid_rows():
    scores = torch.tensor([[-1.0, -2.0], [float("-inf"), float("-inf")]])
    out = calibrate_scores(scores, calibration_offset(torch.tensor([[-0.1, -3.0]])))
    assert torch.isneginf(out[1]).all() and torch.isfinite(out[0]).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" positive", 1),
        ("Positive.", 1),
        ("very positive!\nmore", 1),
        ("\n\n negative because", 0),
        ("NEGATIVE", 0),
        ("it is not positive", None),  # no substring search
        ("", None),
        ("neutral", None),
        ("positively", None),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text, make_task()) == expected


def test_parse_answer_prefers_the_longest_match():
    task = make_task()
    task.answers, task.verbalizers = ["space", "space station"], [" space", " space station"]
    assert parse_answer("space station orbit", task) == 1
    assert parse_answer("space", task) == 0


class FakeLM:
    name = "fake"

    def __init__(self, outputs):
        self.outputs = outputs

    def generate(self, texts, max_new_tokens=16):
        """Example i (its text says "number i") gets outputs[i], whatever order the evaluator batches in."""
        return [self.outputs[int(re.search(r"number (\d+)", t).group(1)) % len(self.outputs)] for t in texts]


def test_generation_scorer_reports_invalid_never_a_class():
    task = make_task(4)
    scorer = GenerationScorer(FakeLM([" negative", " banana", " very positive\nyes", "positive"]))
    result = evaluate(scorer, task, batch_size=4, progress=False)
    assert result.metrics["invalid_rate"] == 0.25
    assert result.metrics["accuracy"] == 0.5  # example 1 (gold positive) invalid; example 2 (gold negative) wrong
    assert result.metrics["nll"] is None
    assert [p["pred"] for p in result.predictions] == ["negative", None, "positive", "positive"]
    assert result.predictions[1]["output"] == " banana" and result.predictions[1]["invalid"]
    assert sum(map(sum, result.metrics["confusion"])) == 3


def test_generation_on_tiny_model(tiny_lm):
    task = make_task(2)
    scores = GenerationScorer(tiny_lm, max_new_tokens=3).score(task, task.split("test"))
    assert scores.shape == (2, 2)
    assert all(torch.isneginf(r).all() or (r == 0).sum() == 1 for r in scores)


def test_distinct_prefix_continues_only_answers_that_share_their_first_tokens():
    # r52's shape: " money-fx" / " money-supply" share two tokens, " acq" is two tokens, " tea" one
    answers = [[1226, 236809], [3273, 236772, 16912], [3273, 236772, 71703], [11115]]
    assert resolve_answer_rule("distinct-prefix", answers) == "distinct-prefix"
    assert apply_answer_rule(answers, "distinct-prefix") == [[1226], [3273, 236772, 16912], [3273, 236772, 71703], [11115]]
    assert resolve_answer_rule("distinct-prefix", [[5, 6], [7]]) == "first-token"
    assert apply_answer_rule([[5, 6], [7, 8]], "distinct-prefix") == [[5], [7]]
    # an answer that is another's prefix keeps all its tokens; the longer one parts one token later
    assert apply_answer_rule([[5, 6], [5, 6, 7], [8]], "distinct-prefix") == [[5, 6], [5, 6, 7], [8]]
    assert apply_answer_rule([[5, 6, 9], [5, 7, 9]], "distinct-prefix") == [[5, 6], [5, 7]]


def test_answer_rule_scores_the_first_token_only_where_it_tells_the_answers_apart():
    assert resolve_answer_rule("first-token", [[5, 6], [7]]) == "first-token"
    assert resolve_answer_rule("first-token", [[5, 6], [5, 7]]) == "full"  # shared first token
    assert apply_answer_rule([[5, 6], [7, 8, 9]], "first-token") == [[5], [7]]
    assert apply_answer_rule([[5, 6], [7, 8, 9]], "full") == [[5, 6], [7, 8, 9]]
    with pytest.raises(LwError, match="unknown answer rule"):
        resolve_answer_rule("last", [[1]])
    lm = tiny_gemma3(word_start_merges=True)  # " negative" / " very positive": distinct first tokens
    task = make_task()
    examples = task.split("test")[:3]
    first = ZeroShotScorer(lm, answer_rule="first-token").score(task, examples)
    full = ZeroShotScorer(lm).score(task, examples)
    ids = [lm.token_ids(v)[:1] for v in task.verbalizers]
    assert torch.allclose(first, lm.score_answers(lm.embed_texts([task.prompt(e) for e in examples]), ids).logprobs)
    assert (full < first).all()  # the continuation adds negative log-probs


def test_the_log_says_when_first_token_falls_back_to_full_and_what_distinct_prefix_would_score():
    answers = [[1226, 236809], [3273, 236772, 16912], [3273, 236772, 71703], [11115]]
    hint = answer_rule_hint("first-token", answers)
    # full: prefixes (1226) (3273) (3273 236772); distinct-prefix keeps the two that share tokens whole
    assert "3 continuation positions" in hint and "(2)" in hint and "--answer-rule distinct-prefix" in hint
    assert answer_rule_hint("first-token", [[5, 6], [7]]) is None  # first tokens tell them apart
    assert answer_rule_hint("distinct-prefix", answers) is None
    assert answer_rule_hint("full", answers) is None
