"""The one evaluator: any scorer, any task, one split → metrics and per-example predictions.

Classification: the scorer returns [B, len(task.answers)] scores; the prediction is the argmax; a row
of all -inf is *invalid* (counted in `invalid_rate`, wrong for accuracy, never a class). Metrics:
accuracy, macro-F1 (over the classes present in gold or predictions, as scikit-learn does), the
confusion matrix (rows = gold, columns = predicted; invalid rows are not in it), the majority-class
rate of the split, and `nll` = mean −log p(gold) with the scores renormalised over the answer set
(only where the scorer's scores are log-probabilities: `scorer.scores_are_logprobs`, default True).

Generative (QA): the scorer's `generate(task, examples) -> list[str]` gives answers; EM and F1 use the
SQuAD normalisation (lower-case, no punctuation, no articles, collapsed spaces), best over references;
an empty answer is invalid.
"""

from __future__ import annotations

import json
import math
import re
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lw_core.errors import LwError
from tqdm.auto import tqdm

from lw_tasks.task import Example, Task


@dataclass
class EvalResult:
    task: str
    split: str
    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]
    scores: torch.Tensor | None = field(default=None, repr=False)
    """[N, A] scores (classification), kept for re-scoring (e.g. calibration) without a second pass."""


# ---- classification ----------------------------------------------------------------------------
def check_scores(scores: Any, task: Task, batch: int, who: str = "scorer") -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise LwError(f"{who} returned {type(scores).__name__}, expected a tensor of scores")
    expected = (batch, len(task.answers))
    if tuple(scores.shape) != expected:
        raise LwError(
            f"{who} returned scores of shape {tuple(scores.shape)} for task {task.name!r}; expected "
            f"[batch, answers] = {list(expected)}"
        )
    scores = scores.detach().float().cpu()
    if torch.isnan(scores).any():
        raise LwError(f"{who} returned NaN scores for task {task.name!r}")
    if torch.isposinf(scores).any():
        raise LwError(f"{who} returned +inf scores for task {task.name!r}")
    return scores


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor, n_answers: int, logprobs: bool = True) -> dict:
    n = len(labels)
    invalid = torch.isneginf(scores).all(dim=-1)
    pred = torch.where(invalid, torch.full_like(labels, -1), scores.argmax(dim=-1))
    confusion = torch.zeros(n_answers, n_answers, dtype=torch.long)
    valid = ~invalid
    confusion.index_put_((labels[valid], pred[valid]), torch.ones(int(valid.sum()), dtype=torch.long), accumulate=True)
    gold = torch.bincount(labels, minlength=n_answers)
    predicted = confusion.sum(dim=0)
    tp = confusion.diag()
    f1s = []
    for c in range(n_answers):
        if gold[c] == 0 and predicted[c] == 0:
            continue
        fp, fn = int(predicted[c] - tp[c]), int(gold[c] - tp[c])
        f1s.append(2 * int(tp[c]) / (2 * int(tp[c]) + fp + fn))
    metrics: dict[str, Any] = {
        "n": n,
        "accuracy": float((pred == labels).double().mean()) if n else float("nan"),
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "invalid_rate": float(invalid.double().mean()) if n else 0.0,
        "majority_rate": float(gold.max()) / n if n else float("nan"),
        "n_answers": n_answers,
        "nll": None,
        "confusion": confusion.tolist(),
    }
    if logprobs and bool(valid.any()):
        logp = torch.log_softmax(scores[valid], dim=-1).gather(1, labels[valid, None]).squeeze(1)
        metrics["nll"] = float(-logp.mean())
    return metrics


def result_from_scores(
    task: Task, split: str, examples: Sequence[Example], scores: torch.Tensor, *, logprobs: bool = True,
    outputs: Sequence[str] | None = None,
) -> EvalResult:
    """Metrics and predictions of [N, A] scores for `examples` (the evaluator's own scoring step)."""
    scores = check_scores(scores, task, len(examples), "scores")
    labels = task.labels(examples)
    metrics = classification_metrics(scores, labels, len(task.answers), logprobs)
    metrics = {"task": task.name, "split": split, **metrics, "answers": list(task.answers)}
    predictions = []
    for i, example in enumerate(examples):
        row = scores[i]
        invalid = bool(torch.isneginf(row).all())
        pred = None if invalid else int(row.argmax())
        record = {
            "id": example.id,
            "gold": task.answers[example.label],  # type: ignore[index]
            "pred": None if pred is None else task.answers[pred],
            "correct": pred == example.label,
            "invalid": invalid,
            "scores": [None if math.isinf(v) else round(v, 5) for v in row.tolist()],
        }
        if outputs is not None:
            record["output"] = outputs[i]
        predictions.append(record)
    return EvalResult(task.name, split, metrics, predictions, scores)


# ---- generative (SQuAD-style EM / F1) ----------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def generative_result(task: Task, split: str, examples: Sequence[Example], outputs: Sequence[str]) -> EvalResult:
    if len(outputs) != len(examples):
        raise LwError(f"generate returned {len(outputs)} answers for {len(examples)} examples")
    predictions, em, f1, invalid = [], 0.0, 0.0, 0
    for example, output in zip(examples, outputs, strict=True):
        if not isinstance(output, str):
            raise LwError(f"generate returned {type(output).__name__}, expected str")
        refs = example.references or ("",)
        e = max(exact_match(output, r) for r in refs)
        f = max(token_f1(output, r) for r in refs)
        bad = not output.strip()
        em, f1, invalid = em + e, f1 + f, invalid + bad
        predictions.append({"id": example.id, "output": output, "references": list(example.references),
                            "em": e, "f1": round(f, 5), "invalid": bad})  # fmt: skip
    n = len(examples)
    metrics = {"task": task.name, "split": split, "n": n, "em": em / n, "f1": f1 / n, "invalid_rate": invalid / n}
    return EvalResult(task.name, split, metrics, predictions)


# ---- the evaluator -----------------------------------------------------------------------------
def evaluate(
    scorer: Any,
    task: Task,
    split: str = "test",
    *,
    batch_size: int = 16,
    limit: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run `scorer` over `task`'s split (first `limit` examples) and score it with the shared metrics."""
    if batch_size < 1:
        raise LwError(f"batch_size must be >= 1, got {batch_size}")
    examples = task.split(split)
    if limit is not None:
        if limit < 1:
            raise LwError(f"limit must be >= 1, got {limit}")
        examples = examples[:limit]
    generative = task.kind == "generative"
    if generative and not callable(getattr(scorer, "generate", None)):
        raise LwError(f"task {task.name!r} is generative: the method must provide generate(task, examples)")
    if not generative and not callable(getattr(scorer, "score", None)):
        raise LwError(f"{type(scorer).__name__} has no score(task, examples) method")
    start = time.perf_counter()
    # Batches of similar length pad less; every scorer scores each example on its own, so the order is
    # restored afterwards and the result is the same as in split order.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].text))
    scores: list[Any] = [None] * len(examples)
    outputs: list[Any] = [None] * len(examples)
    with tqdm(total=len(examples), desc=f"{task.name}/{split}", disable=not progress, unit="ex") as bar:
        for i in range(0, len(examples), batch_size):
            idx = order[i : i + batch_size]
            batch = [examples[j] for j in idx]
            if generative:
                values = scorer.generate(task, batch)
            else:
                values = check_scores(scorer.score(task, batch), task, len(batch), type(scorer).__name__)
                last = getattr(scorer, "last_outputs", None)
                if isinstance(last, list) and len(last) == len(batch):
                    for j, output in zip(idx, last, strict=True):
                        outputs[j] = output
            for j, value in zip(idx, values, strict=True):
                scores[j] = value
            bar.update(len(batch))
    seconds = time.perf_counter() - start
    if generative:
        result = generative_result(task, split, examples, scores)
    else:
        result = result_from_scores(
            task, split, examples, torch.stack(scores), logprobs=getattr(scorer, "scores_are_logprobs", True),
            outputs=outputs if all(o is not None for o in outputs) else None,
        )
    result.metrics["seconds"] = round(seconds, 2)
    result.metrics["examples_per_second"] = round(len(examples) / seconds, 3) if seconds > 0 else None
    return result


def write_eval(result: EvalResult, run_dir: str | Path, split: str | None = None) -> dict[str, Path]:
    """Write `metrics_{split}.json` and `predictions_{split}.jsonl` into the run directory."""
    split = split or result.split
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = run_dir / f"metrics_{split}.json"
    _write_atomic(metrics, json.dumps(result.metrics, indent=2) + "\n")
    predictions = run_dir / f"predictions_{split}.jsonl"
    _write_atomic(predictions, "".join(json.dumps(record) + "\n" for record in result.predictions))
    return {"metrics": metrics, "predictions": predictions}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The scalar metrics (for a run record): no confusion matrix, no answer list."""
    keep = ("accuracy", "macro_f1", "nll", "invalid_rate", "majority_rate", "n_answers", "em", "f1", "n", "seconds")
    return {f"{prefix}{k}": metrics[k] for k in keep if k in metrics}
