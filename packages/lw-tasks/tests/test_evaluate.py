"""The one evaluator: metrics from scores, invalid rows, QA EM/F1, files in the run directory."""

from __future__ import annotations

import json
import math

import pytest
import torch
from lw_core.errors import LwError
from lw_tasks import Example, Task, evaluate, flat_metrics, result_from_scores, write_eval
from lw_tasks.evaluate import exact_match, normalize_answer, token_f1

NEG = float("-inf")


def make_task(labels, answers=("a", "b", "c")) -> Task:
    examples = [Example(id=f"e{i}", text=f"text {i}", label=y) for i, y in enumerate(labels)]
    return Task(name="toy", description="", kind="classification", answers=list(answers),
                verbalizers=[f" {a}" for a in answers], template="{text}\nAnswer:",
                splits={"train": examples, "validation": examples, "test": examples}, max_input_words=8)  # fmt: skip


class FixedScorer:
    """Returns preset rows for each example id."""

    def __init__(self, rows, logprobs=True):
        self.rows = rows
        self.scores_are_logprobs = logprobs
        self.calls = []

    def score(self, task, examples):
        self.calls.append(len(examples))
        return torch.tensor([self.rows[int(e.id[1:])] for e in examples])


def test_metrics_by_hand():
    labels = [0, 0, 1, 1, 2, 2]
    rows = [[0, -1, -2], [-1, 0, -2], [-1, 0, -2], [-1, 0, -2], [-2, -1, 0], [NEG, NEG, NEG]]
    task = make_task(labels)
    scorer = FixedScorer(rows)
    result = evaluate(scorer, task, batch_size=4, progress=False)
    m = result.metrics
    assert scorer.calls == [4, 2]
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    assert m["invalid_rate"] == pytest.approx(1 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    # per class F1: a = 2/3 (tp1 fp0 fn1), b = 0.8 (tp2 fp1 fn0), c = 2/3 (tp1 fp0 fn1: the invalid row)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)
    assert m["majority_rate"] == pytest.approx(1 / 3)
    assert m["n_answers"] == 3 and flat_metrics(m)["n_answers"] == 3  # the record's chance row: 1 / 3
    valid = torch.tensor(rows[:5], dtype=torch.float)
    nll = -torch.log_softmax(valid, -1)[torch.arange(5), torch.tensor(labels[:5])].mean()
    assert m["nll"] == pytest.approx(nll.item(), rel=1e-5)
    assert result.predictions[5] == {"id": "e5", "gold": "c", "pred": None, "correct": False, "invalid": True,
                                     "scores": [None, None, None]}  # fmt: skip
    assert result.predictions[1]["pred"] == "b" and not result.predictions[1]["correct"]


def test_nll_only_for_logprob_scores():
    task = make_task([0, 1])
    result = evaluate(FixedScorer([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], logprobs=False), task, progress=False)
    assert result.metrics["nll"] is None and result.metrics["accuracy"] == 1.0


def test_limit_split_and_shape_checks():
    task = make_task([0, 1, 2])
    result = evaluate(FixedScorer([[0, -1, -1]] * 3), task, split="validation", limit=2, progress=False)
    assert result.metrics["n"] == 2 and result.split == "validation"
    with pytest.raises(LwError, match=r"shape \(3, 2\).*\[3, 3\]"):
        evaluate(FixedScorer([[0, -1]] * 3), task, progress=False)
    with pytest.raises(LwError, match="NaN"):
        evaluate(FixedScorer([[math.nan, 0, 0]] * 3), task, progress=False)
    with pytest.raises(LwError, match="has no split 'dev'"):
        evaluate(FixedScorer([[0, 0, 0]] * 3), task, split="dev", progress=False)
    task.splits["test"] = []
    with pytest.raises(LwError, match="split 'test' is empty"):
        evaluate(FixedScorer([]), task, progress=False)


def test_write_eval(tmp_path):
    task = make_task([0, 1])
    result = result_from_scores(task, "test", task.split("test"), torch.tensor([[0.0, -1, -1], [NEG, NEG, NEG]]))
    paths = write_eval(result, tmp_path, "test")
    metrics = json.loads((tmp_path / "metrics_test.json").read_text())
    assert metrics["accuracy"] == 0.5 and metrics["invalid_rate"] == 0.5 and paths["metrics"].name == "metrics_test.json"
    lines = [json.loads(line) for line in (tmp_path / "predictions_test.jsonl").read_text().splitlines()]
    assert [p["pred"] for p in lines] == ["a", None]


def test_squad_normalisation():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Eiffel Tower", "Eiffel Tower.") == 1.0
    assert token_f1("in Paris France", "Paris") == pytest.approx(0.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


class FakeGenerator:
    def __init__(self, outputs):
        self.outputs = outputs

    def generate(self, task, examples):
        return [self.outputs[e.id] for e in examples]


def test_generative_evaluation():
    examples = [Example(id=str(i), text=f"q {i}", references=refs) for i, refs in
                enumerate([("Paris", "paris city"), ("1912",), ("blue whale",)])]  # fmt: skip
    task = Task(name="qa", description="", kind="generative", answers=[], verbalizers=[], template="{text}\nAnswer:",
                splits={"train": examples, "validation": examples, "test": examples}, max_input_words=8,
                metrics=("em", "f1"))  # fmt: skip
    result = evaluate(FakeGenerator({"0": "Paris", "1": "in 1912", "2": ""}), task, progress=False)
    m = result.metrics
    assert m["em"] == pytest.approx(1 / 3) and m["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["invalid_rate"] == pytest.approx(1 / 3)
    assert result.predictions[1]["references"] == ["1912"]
    with pytest.raises(LwError, match="generate"):
        evaluate(FixedScorer([]), task, progress=False)


def test_length_sorted_batches_keep_split_order():
    texts = ["a much longer text than the others here", "short", "a medium text", "x", "another long text here"]
    examples = [Example(id=f"e{i}", text=t, label=i % 3) for i, t in enumerate(texts)]
    task = make_task([0])
    task.splits["test"] = examples
    rows = [[0.0, -1.0, -2.0], [-1.0, 0.0, -2.0], [-2.0, -1.0, 0.0], [0.0, -3.0, -3.0], [-3.0, 0.0, -3.0]]
    scorer = FixedScorer(rows)
    batched = evaluate(scorer, task, batch_size=2, progress=False)
    single = evaluate(FixedScorer(rows), task, batch_size=1, progress=False)
    assert scorer.calls == [2, 2, 1]
    assert [p["id"] for p in batched.predictions] == [e.id for e in examples]
    assert batched.predictions == single.predictions and torch.equal(batched.scores, single.scores)
